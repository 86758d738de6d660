"""The tunnel page: state, the public URL, every connection's webhook URL, start/stop buttons."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.urls import reverse
from django.utils import timezone

from integrations import tunnel
from integrations.models import Connection, TunnelState
from tests.admin_console.conftest import ConsoleClient

pytestmark = pytest.mark.django_db

PAGE = reverse("admin:integrations_tunnelstate_changelist")
NGROK_TOKEN = "ngrok-CANARY-token-console-77"
PUBLIC = "https://console-abc.ngrok.example"


@pytest.fixture
def enabled(settings: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    agent = tmp_path / "ngrok"
    agent.write_text("#!/bin/sh\nexit 0\n")
    agent.chmod(0o755)
    monkeypatch.setenv("CONSOLE_NGROK_TOKEN", NGROK_TOKEN)
    settings.SYNTHORG_CONFIG_OVERRIDES = {"tunnel": {"enabled": True, "auth_token_env": "CONSOLE_NGROK_TOKEN",
                                                     "ngrok_path": str(agent), "local_port": 8123}}
    tunnel.clear_cache()


def running() -> None:
    TunnelState.objects.create(pk=1, desired="running", status="running", public_url=PUBLIC, owner="host:1",
                               owner_heartbeat_at=timezone.now())
    tunnel.clear_cache()


def test_disabled_tunnel_says_which_setting_and_start_reports_it(root_console: ConsoleClient) -> None:
    page = root_console.get(PAGE).content.decode()
    started = root_console.post(reverse("admin:integrations_tunnel_start"), follow=True).content.decode()

    assert 'id="tunnel-disabled"' in page and "integrations.tunnel.enabled: true" in page
    assert "set integrations.tunnel.enabled: true" in started
    assert not TunnelState.objects.filter(desired="running").exists()


def test_running_tunnel_shows_public_url_and_webhook_urls_through_it(root_console: ConsoleClient, enabled: None,
                                                                     github: Connection) -> None:
    running()

    html = root_console.get(PAGE).content.decode()

    assert f'<code id="tunnel-public-url">{PUBLIC}</code>' in html
    assert f"{PUBLIC}/api/v1/webhooks/{github.name}/auto" in html
    assert 'data-status="running"' in html
    assert "local port 8123" in html


def test_stopped_tunnel_lists_webhook_urls_on_this_host(root_console: ConsoleClient, enabled: None,
                                                        github: Connection) -> None:
    html = root_console.get(PAGE).content.decode()

    assert f"http://testserver/api/v1/webhooks/{github.name}/auto" in html
    assert 'http-equiv="refresh"' not in html


def test_starting_tunnel_page_refreshes_itself(root_console: ConsoleClient, enabled: None) -> None:
    root_console.post(reverse("admin:integrations_tunnel_start"))

    html = root_console.get(PAGE).content.decode()

    assert 'data-status="starting"' in html
    assert 'http-equiv="refresh"' in html


def test_auth_token_value_is_never_on_the_page(root_console: ConsoleClient, enabled: None) -> None:
    running()

    html = root_console.get(PAGE).content.decode()

    assert "CONSOLE_NGROK_TOKEN" in html
    assert NGROK_TOKEN not in html


def test_viewer_without_control_permission_sees_no_buttons(console: Callable[..., ConsoleClient],
                                                           enabled: None) -> None:
    viewer = console("integrations.view_tunnelstate")
    controller = console("integrations.control_tunnel")

    seen = viewer.get(PAGE).content.decode()
    allowed = controller.get(PAGE).content.decode()

    assert 'id="tunnel-start"' not in seen
    assert 'id="tunnel-start"' in allowed and 'id="tunnel-stop"' in allowed


def test_staff_without_any_tunnel_permission_cannot_see_the_page(console: Callable[..., ConsoleClient]) -> None:
    assert console().get(PAGE).status_code == 403


def test_tunnel_has_no_add_change_or_delete_pages(root_console: ConsoleClient) -> None:
    assert root_console.get(reverse("admin:integrations_tunnelstate_add")).status_code == 403


def test_index_tunnel_card_links_to_the_tunnel_page(root_console: ConsoleClient) -> None:
    html = root_console.get(reverse("admin:index")).content.decode()

    card = html.split("<h2>Tunnel</h2>")[1].split("</table>")[0]
    assert f'<a href="{PAGE}">stopped</a>' in card
