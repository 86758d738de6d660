"""Default rules: every event, to every enabled sink (a rule naming no sink uses them all).

They record problems from the start (the console's Problems card shows them) but send
nothing until an operator creates a sink: effective the moment one exists (issue 16).
"""
from __future__ import annotations

from django.db import migrations

DEFAULT_RULES = [
    ("Connections unhealthy", ["connection.unhealthy"], {}),
    ("OAuth needs re-authorisation", ["oauth.reauthorization_required"], {}),
    ("OAuth refresh failing", ["oauth.refresh_failing"], {"refresh_failing_minutes": 15}),
    ("Webhook rejections", ["webhooks.rejections"], {"rejections_per_5_minutes": 20}),
    ("Workflow runs failing", ["workflow_run.failed"], {}),
    ("Credentials expiring", ["credential.expiring"], {"expiry_days": 14}),
    ("Webhook publication backlog", ["outbox.backlog"], {"backlog_minutes": 10}),
    ("Secret backend unavailable", ["secrets.unavailable"], {}),
]


def create(apps, schema_editor):
    AlertRule = apps.get_model("notifications", "AlertRule")
    for name, events, params in DEFAULT_RULES:
        AlertRule.objects.get_or_create(name=name, defaults={"events": events, "params": params, "enabled": True})


def remove(apps, schema_editor):
    AlertRule = apps.get_model("notifications", "AlertRule")
    AlertRule.objects.filter(name__in=[name for name, _, _ in DEFAULT_RULES]).delete()


class Migration(migrations.Migration):
    dependencies = [("notifications", "0001_initial")]
    operations = [migrations.RunPython(create, remove)]
