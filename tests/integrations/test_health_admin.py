"""Admin: health badge and last error on the list, and the "Check now" action."""
from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from integrations import services
from integrations.models import Connection
from synthorg.models import AuditEvent
from tests.peers.http_peer import HttpPeer

pytestmark = pytest.mark.django_db

LIST_URL = reverse("admin:integrations_connection_changelist")


@pytest.fixture
def admin_client(superuser: Any) -> Client:
    client = Client()
    client.force_login(superuser)
    return client


def make(name: str, url: str) -> Connection:
    return services.connection_create(name=name, connection_type="generic_http",
                                      credentials={"base_url": url, "token": "adm-secret-4"})


def test_check_now_probes_records_and_reports(admin_client: Client) -> None:
    with HttpPeer() as peer:
        ok = make("ok-svc", peer.url("/status/200"))
        bad = make("bad-svc", peer.url("/status/500"))
        response = admin_client.post(LIST_URL, {"action": "check_now", "_selected_action": [ok.pk, bad.pk]},
                                     follow=True)
        assert len(peer.received) == 2
    assert response.status_code == 200
    page = response.content.decode().lower()  # the admin capitalises messages
    assert "ok-svc: healthy (healthy: head: http 200)" in page
    assert "bad-svc: degraded (unhealthy: head" in page
    assert "adm-secret-4" not in page
    bad.refresh_from_db()
    assert bad.health_consecutive_failures == 1 and "HTTP 500" in bad.health_last_error
    change = AuditEvent.objects.filter(action="connection.health_changed", target="bad-svc").get()
    assert change.actor_name == "root"


def test_list_shows_badge_and_last_error(admin_client: Client) -> None:
    with HttpPeer() as peer:
        bad = make("bad-svc", peer.url("/status/503"))
        admin_client.post(LIST_URL, {"action": "check_now", "_selected_action": [bad.pk]})
    page = admin_client.get(LIST_URL).content.decode()
    assert "health-degraded" in page and "Degraded" in page
    assert "HTTP 503" in page
