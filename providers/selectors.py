"""Reads of provider configs: by name (case-insensitive), lists, and what depends on a connection."""
from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from providers.models import ProviderConfig
from synthorg.errors import NotFound


def provider_list(*, driver: str | None = None, connection_name: str | None = None) -> QuerySet[ProviderConfig]:
    # select_related: the output names the connection, so a page costs one query whatever its size.
    qs = ProviderConfig.objects.select_related("connection").order_by("name")
    if driver:
        qs = qs.filter(driver=driver)
    if connection_name:
        qs = qs.filter(connection__name__iexact=connection_name)
    return qs


def provider_find(name: str) -> ProviderConfig | None:
    return ProviderConfig.objects.select_related("connection").filter(name__iexact=name).first()


def provider_get(name: str) -> ProviderConfig:
    provider = provider_find(name)
    if provider is None:
        raise NotFound(f"No provider named {name!r}.", code="provider_not_found")
    return provider


def provider_names_for_connection(connection: Any) -> list[str]:
    """Names of the providers that reference `connection` (the dependants hook's `list_names`)."""
    return list(ProviderConfig.objects.filter(connection_id=connection.pk).order_by("name")
                .values_list("name", flat=True))
