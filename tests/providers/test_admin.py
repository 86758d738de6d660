from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from providers import services
from providers.models import ProviderConfig
from synthorg.models import AuditEvent
from tests.providers.conftest import CANARY

pytestmark = pytest.mark.django_db

ADD = "/admin/providers/providerconfig/add/"


@pytest.fixture
def admin_client_(superuser: Any) -> Client:
    client = Client()
    client.force_login(superuser)
    return client


def _change_url(provider: ProviderConfig) -> str:
    return f"/admin/providers/providerconfig/{provider.pk}/change/"


def test_admin_add_goes_through_service(admin_client_: Client) -> None:
    response = admin_client_.post(ADD, {"name": "main", "driver": "openai", "base_url": "", "model": "gpt",
                                        "api_key": CANARY})
    assert response.status_code == 302, response.content.decode()[:2000]
    provider = ProviderConfig.objects.get(name="main")
    assert services.provider_embedded_credentials(provider) == {"api_key": CANARY}
    event = AuditEvent.objects.get(action="provider.create")
    assert event.actor_name == "root"


def test_admin_add_rule_violation_shows_field_error(admin_client_: Client, make_connection: Any) -> None:
    connection = make_connection()
    response = admin_client_.post(ADD, {"name": "main", "driver": "openai", "connection": connection.pk,
                                        "api_key": CANARY})
    assert response.status_code == 200
    assert "cannot be set together with connection_name" in response.content.decode()
    assert CANARY not in response.content.decode()
    assert not ProviderConfig.objects.exists()
    assert not AuditEvent.objects.filter(action="provider.create").exists()


def test_admin_change_page_never_renders_secret_and_blank_keeps_it(admin_client_: Client,
                                                                   make_provider: Any) -> None:
    provider = make_provider(name="main", api_key=CANARY)
    page = admin_client_.get(_change_url(provider))
    assert page.status_code == 200 and CANARY not in page.content.decode()
    response = admin_client_.post(_change_url(provider), {"driver": "anthropic", "model": "claude",
                                                          "base_url": "", "api_key": ""})
    assert response.status_code == 302
    provider.refresh_from_db()
    assert provider.driver == "anthropic"
    assert services.provider_embedded_credentials(provider) == {"api_key": CANARY}
    assert AuditEvent.objects.get(action="provider.update").details["changed"] == ["driver", "model"]
    for url in ("/admin/providers/providerconfig/", f"/admin/providers/providerconfig/{provider.pk}/history/",
                f"/admin/providers/providerconfig/{provider.pk}/delete/"):
        assert CANARY not in admin_client_.get(url).content.decode()


def test_admin_clear_embedded_and_point_at_connection(admin_client_: Client, make_connection: Any,
                                                      make_provider: Any) -> None:
    connection = make_connection()
    provider = make_provider(name="main", api_key=CANARY)
    response = admin_client_.post(_change_url(provider), {"driver": "openai", "model": "gpt-4o", "base_url": "",
                                                          "connection": connection.pk, "clear_embedded": "on"})
    assert response.status_code == 302
    provider.refresh_from_db()
    assert provider.connection_id == connection.pk and provider.embedded_fields == []


def test_admin_delete_and_bulk_delete_are_audited(admin_client_: Client, make_provider: Any) -> None:
    one = make_provider(name="one")
    make_provider(name="two")
    make_provider(name="three")
    response = admin_client_.post(f"/admin/providers/providerconfig/{one.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    response = admin_client_.post("/admin/providers/providerconfig/", {
        "action": "delete_selected", "post": "yes",
        "_selected_action": list(ProviderConfig.objects.values_list("pk", flat=True))})
    assert response.status_code == 302
    assert not ProviderConfig.objects.exists()
    assert sorted(AuditEvent.objects.filter(action="provider.delete").values_list("target", flat=True)) == [
        "one", "three", "two"]
