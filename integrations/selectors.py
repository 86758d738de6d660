"""Reads of connections: by name (case-insensitive), lists, and what probes need."""
from __future__ import annotations

import re

from django.db.models import QuerySet
from django.db.models.functions import Lower

from integrations.models import CONNECTION_NAME_PATTERN, Connection
from synthorg.errors import NotFound

_NAME_RE = re.compile(CONNECTION_NAME_PATTERN)


def connection_list(*, connection_type: str | None = None) -> QuerySet[Connection]:
    qs = Connection.objects.all().order_by("name")
    if connection_type:
        qs = qs.filter(connection_type=connection_type)
    return qs


def _lookup(name: str) -> Connection | None:
    # A name that cannot exist is not looked up (NUL bytes and the like never reach the database).
    if not _NAME_RE.fullmatch(name):
        return None
    return Connection.objects.annotate(lower_name=Lower("name")).filter(lower_name=name.lower()).first()


def connection_get(name: str) -> Connection:
    connection = _lookup(name)
    if connection is None:
        raise NotFound(f"No connection named {name!r}.", code="connection_not_found")
    return connection


def connection_find(name: str) -> Connection | None:
    return _lookup(name)
