"""The console as a view-only operator sees it (issue 13 §6): where the cards are, the catalog's
own entry, the tunnel's name and controls, messages that keep names as written, worded OAuth
and run statuses."""
from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from integrations import services as connection_services
from integrations.models import TunnelState
from oauthflow.badges import oauth_badge
from oauthflow.models import GrantType, OAuthToken
from tests.admin_console.conftest import ConsoleClient
from tests.admin_console.test_tunnel_page import PAGE as TUNNEL_PAGE
from tests.admin_console.test_tunnel_page import enabled, running  # noqa: F401  (fixture `enabled`)
from webhooks.models import WorkflowRun

pytestmark = pytest.mark.django_db

CATALOG_PAGE = reverse("admin:catalog_catalogpage_changelist")
RUNS = reverse("admin:webhooks_workflowrun_changelist")


# --- the dashboard cards ----------------------------------------------------------------------

def test_dashboard_cards_are_on_the_index_only(root_console: ConsoleClient) -> None:
    index = root_console.get(reverse("admin:index")).content.decode()
    app_index = root_console.get(reverse("admin:app_list", args=["integrations"])).content.decode()

    assert 'class="synthorg-dashboard"' in index
    assert "{#" not in index and "{%" not in index  # no template comment leaks onto the page
    assert 'class="synthorg-dashboard"' not in app_index
    assert "Connections" in app_index  # the app's own model list is still there


# --- the MCP catalog's own entry ----------------------------------------------------------------

def test_view_only_operator_finds_the_catalog_in_the_sidebar_and_on_the_dashboard(
        console: Callable[..., ConsoleClient]) -> None:
    viewer = console("catalog.view_installation")

    index = viewer.get(reverse("admin:index")).content.decode()
    sidebar_page = viewer.get(reverse("admin:catalog_installation_changelist")).content.decode()
    catalog = viewer.get(CATALOG_PAGE)

    assert f'href="{CATALOG_PAGE}"' in index  # the app list and the catalog card
    link = re.escape(CATALOG_PAGE)
    assert re.search(rf'<tr class="model-catalogpage">\s*<th scope="row"[^>]*>\s*<a href="{link}">MCP server catalog</a>',
                     index)
    assert "servers in the catalog" in index
    nav = sidebar_page[sidebar_page.index('id="nav-sidebar"'):]
    assert f'href="{CATALOG_PAGE}"' in nav
    assert catalog.status_code == 200
    assert "<h1>MCP server catalog</h1>" in catalog.content.decode()


def test_catalog_entry_needs_the_installation_view_permission(console: Callable[..., ConsoleClient]) -> None:
    outsider = console()

    assert f'href="{CATALOG_PAGE}"' not in outsider.get(reverse("admin:index")).content.decode()
    assert outsider.get(CATALOG_PAGE).status_code == 403


# --- the tunnel --------------------------------------------------------------------------------

def test_tunnel_is_called_tunnel(root_console: ConsoleClient) -> None:
    html = root_console.get(reverse("admin:index")).content.decode()

    assert "Tunnel states" not in html
    assert re.search(rf'<a href="{re.escape(TUNNEL_PAGE)}"[^>]*>Tunnel</a>', html)


def test_start_is_offered_only_while_the_tunnel_is_stopped_and_enabled(root_console: ConsoleClient,
                                                                      enabled: None) -> None:  # noqa: F811
    stopped = root_console.get(TUNNEL_PAGE).content.decode()
    running()
    up = root_console.get(TUNNEL_PAGE).content.decode()

    assert 'id="tunnel-start"' in stopped
    assert 'id="tunnel-start"' not in up
    assert 'id="tunnel-stop"' in up


def test_start_is_not_offered_while_the_tunnel_is_disabled(root_console: ConsoleClient) -> None:
    html = root_console.get(TUNNEL_PAGE).content.decode()

    assert 'id="tunnel-disabled"' in html
    assert 'id="tunnel-start"' not in html


def test_start_is_not_offered_while_the_tunnel_is_starting(root_console: ConsoleClient,
                                                           enabled: None) -> None:  # noqa: F811
    TunnelState.objects.create(pk=1, desired="running", status="stopped")

    assert 'id="tunnel-start"' not in root_console.get(TUNNEL_PAGE).content.decode()


# --- messages ---------------------------------------------------------------------------------

def test_messages_keep_the_connection_name_as_written(root_console: ConsoleClient) -> None:
    connection = connection_services.connection_create(name="gh-ops", connection_type="generic_http",
                                                       credentials={"base_url": "http://127.0.0.1:9/"})

    page = root_console.post(reverse("admin:integrations_connection_check", args=[connection.pk]), follow=True)

    messages = page.content.decode().split('class="messagelist"', 1)[1].split("</ul>", 1)[0]
    assert "gh-ops: " in messages
    assert "Gh-ops" not in messages


# --- OAuth statuses: badges with words --------------------------------------------------------

def _token(**fields: object) -> OAuthToken:
    defaults: dict[str, object] = {"grant_type": GrantType.AUTHORIZATION_CODE, "status": OAuthToken.Status.ACTIVE,
                                   "has_refresh_token": True, "expires_at": timezone.now() + timedelta(hours=1)}
    return OAuthToken(**{**defaults, **fields})


@pytest.mark.parametrize(("token", "word"), [
    (None, "not connected"),
    (_token(), "connected"),
    (_token(has_refresh_token=False, expires_at=timezone.now() + timedelta(hours=2)), "expiring"),
    (_token(has_refresh_token=False, expires_at=timezone.now() - timedelta(minutes=1)), "needs re-authorisation"),
    (_token(status=OAuthToken.Status.REAUTHORIZATION_REQUIRED), "needs re-authorisation"),
    (_token(has_refresh_token=False, expires_at=None), "connected"),
], ids=["none", "active", "expiring", "expired", "reauthorization", "no-expiry"])
def test_oauth_status_words(token: OAuthToken | None, word: str) -> None:
    assert oauth_badge(token).word == word


def test_connect_page_shows_the_oauth_status_as_a_worded_badge(root_console: ConsoleClient) -> None:
    connection_services.connection_create(name="idp", connection_type="oauth_app", credentials={
        "client_id": "console-client", "client_secret": "console-secret-0123456789",
        "auth_url": "https://idp.example/authorize", "token_url": "https://idp.example/token"})

    html = root_console.get(reverse("admin:oauthflow_connect", args=["idp"])).content.decode()

    badge = re.search(r'<span class="console-badge oauth-badge ([a-z_]+)" id="oauth-status"[^>]*>([^<]+)</span>',
                      html)
    assert badge is not None and badge.groups() == ("not_connected", "not connected")


# --- a retried run ----------------------------------------------------------------------------

def test_retried_run_reads_queued_not_failed(root_console: ConsoleClient) -> None:
    run = WorkflowRun.objects.create(rule_name="console-rule", workflow="log_event", event_id=uuid.uuid4(),
                                     status=WorkflowRun.Status.FAILED, attempts=3,
                                     error="TransientError: upstream 503")

    page = root_console.post(RUNS, {"action": "retry_selected", "_selected_action": [str(run.pk)]}, follow=True)

    html = page.content.decode()
    assert f"Run {run.pk} queued again." in html
    row = html[html.index(f'value="{run.pk}"'):].split("</tr>", 1)[0]
    assert ">queued</span>" in row
    assert "failed" not in row.lower() and "upstream 503" not in row
