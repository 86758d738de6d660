from __future__ import annotations

from typing import Any

import pytest

from integrations import services as connection_services
from integrations.dependants import registered
from providers.models import ProviderConfig
from synthorg.errors import Conflict
from synthorg.models import AuditEvent

pytestmark = pytest.mark.django_db


def test_providers_hook_is_registered() -> None:
    assert "provider configs" in [d.label for d in registered()]


def test_delete_of_referenced_connection_is_409_naming_providers(make_connection: Any, make_provider: Any) -> None:
    make_connection()
    make_provider(name="alpha", connection_name="llm-gateway")
    make_provider(name="beta", connection_name="llm-gateway")
    make_provider(name="unrelated")
    with pytest.raises(Conflict) as info:
        connection_services.connection_delete(name="llm-gateway")
    assert info.value.code == "connection_has_dependants"
    assert "provider configs: alpha, beta" in info.value.detail
    assert ProviderConfig.objects.count() == 3


def test_forced_delete_removes_providers_through_service(make_connection: Any, make_provider: Any) -> None:
    make_connection()
    make_provider(name="alpha", connection_name="llm-gateway")
    make_provider(name="unrelated")
    connection_services.connection_delete(name="llm-gateway", force=True, actor="ops")
    assert list(ProviderConfig.objects.values_list("name", flat=True)) == ["unrelated"]
    event = AuditEvent.objects.get(action="provider.delete", target="alpha")
    assert event.actor_name == "ops" and "deleted with force" in event.reason


def test_api_delete_is_409_then_force_removes(operator_client: Any, make_connection: Any, make_provider: Any) -> None:
    make_connection()
    make_provider(name="alpha", connection_name="llm-gateway")
    response = operator_client.delete("/api/v1/connections/llm-gateway")
    assert response.status_code == 409
    assert "alpha" in response.json()["detail"]
    response = operator_client.delete("/api/v1/connections/llm-gateway?force=true")
    assert response.status_code == 204
    assert not ProviderConfig.objects.exists()
    assert operator_client.get("/api/v1/connections/llm-gateway").status_code == 404


def test_unreferenced_connection_deletes_without_force(make_connection: Any, make_provider: Any) -> None:
    make_connection()
    make_provider(name="alpha")
    connection_services.connection_delete(name="llm-gateway")
    assert ProviderConfig.objects.count() == 1
