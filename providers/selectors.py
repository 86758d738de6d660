"""Reads of provider configs: by name (case-insensitive), lists, and what depends on a connection."""
from __future__ import annotations

import re
from typing import Any

from django.db.models import QuerySet
from django.db.models.functions import Lower

from providers.models import PROVIDER_NAME_PATTERN, ProviderConfig
from synthorg.errors import NotFound

_NAME_RE = re.compile(PROVIDER_NAME_PATTERN)


def provider_list(*, driver: str | None = None, connection_name: str | None = None) -> QuerySet[ProviderConfig]:
    # select_related: the output names the connection, so a page costs one query whatever its size.
    qs = ProviderConfig.objects.select_related("connection").order_by("name")
    if driver:
        qs = qs.filter(driver=driver)
    if connection_name:
        qs = qs.filter(connection__name__iexact=connection_name)
    return qs


def provider_find(name: str) -> ProviderConfig | None:
    # A name that cannot exist is not looked up (NUL bytes and the like never reach the database);
    # fullmatch, because `$` in the pattern would also accept a trailing newline.
    if not _NAME_RE.fullmatch(name):
        return None
    # Lower(name) = lower(value) uses the case-insensitive unique index.
    return (ProviderConfig.objects.select_related("connection").annotate(lower_name=Lower("name"))
            .filter(lower_name=name.lower()).first())


def provider_get(name: str) -> ProviderConfig:
    provider = provider_find(name)
    if provider is None:
        raise NotFound(f"No provider named {name!r}.", code="provider_not_found")
    return provider


def provider_names_for_connection(connection: Any) -> list[str]:
    """Names of the providers that reference `connection` (the dependants hook's `list_names`)."""
    return list(ProviderConfig.objects.filter(connection_id=connection.pk).order_by("name")
                .values_list("name", flat=True))
