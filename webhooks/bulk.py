"""Batch statements the ORM has no call for, each one round trip (issue 15 §6).

* ``insert_returning``: ``INSERT ... ON CONFLICT DO NOTHING RETURNING`` for many rows. Django's
  ``bulk_create(ignore_conflicts=True)`` cannot say which rows it inserted, and without
  ``ignore_conflicts`` a conflict is an IntegrityError for the whole batch; both wrap the INSERT
  in BEGIN/COMMIT. Compiled by the ORM (``InsertQuery``), so each value goes through its
  field's ``get_db_prep_save`` as in ``bulk_create``; PostgreSQL and SQLite >= 3.35.
* ``update_returning_ids``: a conditional ``UPDATE ... WHERE id IN (...) AND (...) RETURNING id``,
  which rows of a batch a claim took (the ORM's ``update()`` returns a count).

Outside a transaction each is one autocommitted statement; inside one, part of it.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db import connection
from django.db.models import Field, Model
from django.db.models.constants import OnConflict
from django.db.models.sql import InsertQuery


def insert_returning(model: type[Model], objs: Sequence[Model], returning: Sequence[str]) -> list[tuple[Any, ...]]:
    """Insert ``objs`` (their concrete fields but the primary key), skipping any that a unique
    constraint already holds (committed, or committed meanwhile by a concurrent transaction this
    one waited for); returns the ``returning`` columns of the rows inserted."""
    if not objs:
        return []
    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    for obj in objs:
        for field in fields:
            field.pre_save(obj, add=True)  # auto_now_add and the like, as `bulk_create` does
    query = InsertQuery(model, on_conflict=OnConflict.IGNORE)
    query.insert_values(fields, list(objs), raw=False)
    compiler = query.get_compiler(connection=connection)
    compiler.returning_fields = [model._meta.get_field(name) for name in returning]
    [(sql, params)] = compiler.as_sql()
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [tuple(row) for row in cursor.fetchall()]


def update_returning_ids(model: type[Model], assignments: dict[str, Any], ids: Sequence[int], condition: str,
                         condition_params: Sequence[Any]) -> list[int]:
    """``UPDATE model SET assignments WHERE id IN ids AND (condition) RETURNING id``.

    ``assignments`` maps a field name to a value (through the field's ``get_db_prep_save``) or
    to a SQL expression, ``Raw("attempts + 1")``; ``condition`` is constant SQL from the caller
    with %s placeholders for ``condition_params``.
    """
    if not ids:
        return []
    ops = connection.ops
    sets, params = [], []
    for name, value in assignments.items():
        field: Field[Any, Any] = model._meta.get_field(name)  # type: ignore[assignment]
        if isinstance(value, Raw):
            sets.append(f"{ops.quote_name(field.column)} = {value.sql}")
            params.extend(value.params)
        else:
            sets.append(f"{ops.quote_name(field.column)} = %s")
            params.append(field.get_db_prep_save(value, connection))
    marks = ", ".join(["%s"] * len(ids))
    # Only quoted column names, constant SQL from the callers and placeholders.
    sql = (f"UPDATE {ops.quote_name(model._meta.db_table)} SET {', '.join(sets)} "  # noqa: S608
           f"WHERE {ops.quote_name(model._meta.pk.column)} IN ({marks}) AND ({condition}) "
           f"RETURNING {ops.quote_name(model._meta.pk.column)}")
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, *ids, *condition_params])
        return [row[0] for row in cursor.fetchall()]


class Raw:
    """A SQL expression for ``update_returning_ids``: constant text from the caller, its values
    as parameters for its %s placeholders."""

    def __init__(self, sql: str, params: Sequence[Any] = ()) -> None:
        self.sql = sql
        self.params = list(params)


def case_by_id(model: type[Model], name: str, values: dict[int, Any]) -> Raw:
    """``CASE id WHEN ... THEN ... ELSE name END``: a per-row value of field ``name`` (each
    through its ``get_db_prep_save``) in one UPDATE."""
    ops = connection.ops
    field: Field[Any, Any] = model._meta.get_field(name)  # type: ignore[assignment]
    whens, params = [], []
    for pk, value in values.items():
        whens.append("WHEN %s THEN %s")
        params += [pk, field.get_db_prep_save(value, connection)]
    return Raw(f"CASE {ops.quote_name(model._meta.pk.column)} {' '.join(whens)} "
               f"ELSE {ops.quote_name(field.column)} END", params)


def db_time(value: Any) -> Any:
    """A datetime as a parameter of ``update_returning_ids``'s ``condition``."""
    return connection.ops.adapt_datetimefield_value(value)
