"""The admin index cards (OAuth, webhooks) and the audit log's filters."""
from __future__ import annotations

import re
import uuid
from datetime import timedelta
from html import unescape
from typing import Any

import pytest
from django.urls import reverse
from django.utils import timezone

from integrations import services as connection_services
from integrations.models import Connection
from oauthflow.models import GrantType, OAuthToken
from synthorg.audit import audit_record
from tests.admin_console.conftest import ConsoleClient
from webhooks.models import Delivery, RejectionCount, WorkflowRun

pytestmark = pytest.mark.django_db


def card(html: str, title: str) -> str:
    match = re.search(rf"<h2>{re.escape(title)}</h2>(.*?)</table>", html, re.S)
    assert match, f"no {title!r} card"
    return match.group(1)


def stat(card_html: str, label: str) -> tuple[str, str | None]:
    """(value, link) of one row of a card."""
    match = re.search(rf'<th scope="row">{re.escape(label)}</th>\s*<td[^>]*>\s*(?:<a href="([^"]+)">)?([^<\s]+)',
                      card_html)
    assert match, f"no {label!r} row"
    return match.group(2), unescape(match.group(1)) if match.group(1) else None


def token(connection: Connection, **fields: Any) -> OAuthToken:
    return OAuthToken.objects.create(connection=connection, grant_type=GrantType.AUTHORIZATION_CODE,
                                     ciphertext="x", key_id="k", obtained_at=timezone.now(), **fields)


def oauth_app(name: str) -> Connection:
    return connection_services.connection_create(
        name=name, connection_type="oauth_app",
        credentials={"client_id": "c", "client_secret": "s-console", "token_url": "http://127.0.0.1:9/token"})


def test_oauth_card_counts_and_links_to_filtered_lists(root_console: ConsoleClient) -> None:
    token(oauth_app("soon"), expires_at=timezone.now() + timedelta(hours=2))
    token(oauth_app("later"), expires_at=timezone.now() + timedelta(days=5))
    token(oauth_app("reauth"), status=OAuthToken.Status.REAUTHORIZATION_REQUIRED)

    html = card(root_console.get(reverse("admin:index")).content.decode(), "OAuth tokens")
    value, link = stat(html, "expiring within 24 h")
    reauth_value, reauth_link = stat(html, "need re-authorisation")
    listed = root_console.get(link).content.decode()
    reauth_listed = root_console.get(reauth_link).content.decode()

    assert (value, reauth_value) == ("1", "1")
    assert ">soon (" in listed and ">later (" not in listed
    assert ">reauth (" in reauth_listed and ">soon (" not in reauth_listed


def test_webhooks_card_counts_the_last_hour_by_outcome_and_failed_runs(root_console: ConsoleClient,
                                                                       github: Connection) -> None:
    now = timezone.now()
    for minutes, outcome in ((5, "accepted"), (10, "accepted"), (120, "accepted"), (5, "accepted_unverified")):
        Delivery.objects.create(connection=github, connection_name=github.name, connection_type="github",
                                event_type="push", path_event_type="auto", replay_key=uuid.uuid4().hex, body=b"",
                                outcome=outcome, received_at=now - timedelta(minutes=minutes))
    RejectionCount.objects.create(connection_name=github.name, reason="bad_signature",
                                  minute=now - timedelta(minutes=3), count=4)
    WorkflowRun.objects.create(rule_name="r", workflow="log_event", event_id=uuid.uuid4(), status="failed")

    html = card(root_console.get(reverse("admin:index")).content.decode(), "Webhooks")
    accepted, accepted_link = stat(html, "accepted (last hour)")
    rejected, rejected_link = stat(html, "rejected (last hour)")
    failed, failed_link = stat(html, "failed workflow runs")

    assert (accepted, rejected, failed) == ("2", "4", "1")
    assert stat(html, "accepted without signature check (last hour)")[0] == "1"
    for link in (accepted_link, rejected_link, failed_link):
        assert root_console.get(link).status_code == 200
    assert "2 deliveries" in root_console.get(accepted_link).content.decode()


def test_audit_log_filters_by_actor_action_and_target(root_console: ConsoleClient) -> None:
    audit_record(action="mcp.install", target="memory", target_type="mcp_installation", actor="alice")
    audit_record(action="mcp.uninstall", target="memory", target_type="mcp_installation", actor="bob")
    audit_record(action="mcp.install", target="github", target_type="mcp_installation", actor="bob")
    url = reverse("admin:synthorg_auditevent_changelist")

    def rows(**query: str) -> int:
        html = root_console.get(url, query).content.decode()
        return len(re.findall(r'<tr[^>]*>\s*<td class="action-checkbox">|<th class="field-created_at', html))

    page = root_console.get(url).content.decode()
    assert rows(actor_name="bob") == 2
    assert rows(action__exact="mcp.install") == 2
    assert rows(target="memory") == 2
    assert rows(target="memory", actor_name="bob") == 1
    assert "?actor_name=alice" in unescape(page) and "?target=memory" in unescape(page)


def test_audit_log_is_read_only(root_console: ConsoleClient) -> None:
    audit_record(action="mcp.install", target="memory", target_type="mcp_installation", actor="alice")

    assert root_console.get(reverse("admin:synthorg_auditevent_add")).status_code == 403
