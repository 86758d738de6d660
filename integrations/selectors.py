"""Reads of connections: by name (case-insensitive), lists, and what probes need."""
from __future__ import annotations

from django.db.models import QuerySet

from integrations.models import Connection
from synthorg.errors import NotFound


def connection_list(*, connection_type: str | None = None) -> QuerySet[Connection]:
    qs = Connection.objects.all().order_by("name")
    if connection_type:
        qs = qs.filter(connection_type=connection_type)
    return qs


def connection_get(name: str) -> Connection:
    connection = Connection.objects.filter(name__iexact=name).first()
    if connection is None:
        raise NotFound(f"No connection named {name!r}.", code="connection_not_found")
    return connection


def connection_find(name: str) -> Connection | None:
    return Connection.objects.filter(name__iexact=name).first()
