"""Delivery drops its redundant indexes: the foreign key's own index on connection_id (the
unique (connection, replay_key) and the (connection, -received_at) index both start with
it) and event_type's two (no query filters or orders on it).

Django's AlterField(db_index=False) on a foreign key drops and re-adds the FK constraint,
which on PostgreSQL re-validates every row under a lock that blocks inserts: a deploy on a
large deliveries table would stall the receiver. So the FK's index is dropped by name (found
by introspection) and only the migration state changes.
"""
from __future__ import annotations

from typing import Any

import django.db.models.deletion
from django.db import migrations, models

TABLE = "webhooks_delivery"


def _connection_id_indexes(schema_editor: Any) -> list[str]:
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, TABLE)
    return [name for name, info in constraints.items()
            if info["index"] and not info["unique"] and not info["primary_key"]
            and info["columns"] == ["connection_id"]]


def drop_connection_index(apps: Any, schema_editor: Any) -> None:
    model = apps.get_model("webhooks", "Delivery")
    for name in _connection_id_indexes(schema_editor):
        schema_editor.execute(schema_editor._delete_index_sql(model, name))


def add_connection_index(apps: Any, schema_editor: Any) -> None:
    model = apps.get_model("webhooks", "Delivery")
    if not _connection_id_indexes(schema_editor):
        schema_editor.execute(schema_editor._create_index_sql(model, fields=[model._meta.get_field("connection")]))


class Migration(migrations.Migration):

    dependencies = [
        ("integrations", "0003_tunnel_permission"),
        ("webhooks", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="delivery",
                    name="connection",
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE,
                                            related_name="+", to="integrations.connection"),
                ),
            ],
            database_operations=[migrations.RunPython(drop_connection_index, add_connection_index)],
        ),
        migrations.AlterField(
            model_name="delivery",
            name="event_type",
            field=models.CharField(max_length=200),
        ),
    ]
