"""Journey 6: start the tunnel from the admin's tunnel page, see its public URL and the
connections' webhook URLs through it, then stop it. The agent is the fake ngrok
(tests/peers/fake_ngrok); the tunnel owner runs in a thread of this process, as
`manage.py tunnel` would beside the web server."""
from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connections

from integrations import services as connection_services
from integrations import tunnel
from integrations.models import TunnelState
from tests.e2e.console import Console, console_fixture  # noqa: F401  (fixture `console`)
from tests.peers.fake_ngrok.fixtures import FakeNgrok, fake_ngrok  # noqa: F401  (fixture)

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]

TUNNEL_PAGE = "/admin/integrations/tunnelstate/"
TOKEN_ENV = "SYNTHORG_E2E_NGROK_TOKEN"
# The page reloads itself every few seconds while the tunnel starts; the fake agent is up in about one.
START_TIMEOUT_MS = 20_000


def agent_stops(path: str, within_seconds: float = 10.0) -> bool:
    from pyngrok import process

    pause = threading.Event()
    for _ in range(int(within_seconds * 10)):
        if not process.is_process_running(path):
            return True
        pause.wait(0.1)
    return False


@pytest.fixture
def tunnel_owner(console: Console, settings: Any, monkeypatch: pytest.MonkeyPatch,
                 fake_ngrok: FakeNgrok) -> Iterator[threading.Thread]:  # noqa: F811
    monkeypatch.setenv(TOKEN_ENV, console.canary("ngrok-authtoken-canary-2e6f0b9d"))
    settings.SYNTHORG_CONFIG_OVERRIDES = {"tunnel": {
        "enabled": True, "auth_token_env": TOKEN_ENV, "ngrok_path": str(fake_ngrok.path),
        "startup_timeout_seconds": 10}}
    tunnel.clear_cache()
    stop = threading.Event()

    def own() -> None:
        try:
            tunnel.TunnelOwner(owner_id="e2e-owner").run(interval=0.2, stop=stop)
        finally:
            connections.close_all()  # this thread's own database connection

    owner = threading.Thread(target=own, name="tunnel-owner", daemon=True)
    owner.start()
    yield owner
    stop.set()
    owner.join(timeout=20)
    tunnel.clear_cache()
    assert not owner.is_alive(), "the tunnel owner did not stop"


def test_tunnel_started_and_stopped_from_its_admin_page(console: Console, tunnel_owner: threading.Thread,
                                                       fake_ngrok: FakeNgrok, superuser: Any) -> None:  # noqa: F811
    connection_services.connection_create(
        name="gh-tunnel", connection_type="github", actor=superuser,
        credentials={"token": console.canary("ghp_tunnelCanary_c41d8e")})
    page = console.page
    console.goto(TUNNEL_PAGE)
    assert page.get_attribute("#tunnel-status", "data-status") == "stopped"
    console.shot("console-tunnel-stopped")

    page.click("#tunnel-start")
    page.wait_for_selector("#tunnel-status[data-status=running]", timeout=START_TIMEOUT_MS)
    public_url = page.locator("code#tunnel-public-url").inner_text().strip()
    assert public_url.startswith("https://") and public_url.endswith(".ngrok-free.app")
    webhook = page.locator(".webhook-url[data-connection=gh-tunnel] code").inner_text().strip()
    assert webhook == f"{public_url}/api/v1/webhooks/gh-tunnel/auto"
    console.shot("console-tunnel-running")
    assert TunnelState.objects.get().public_url == public_url
    # The token reached the agent through its config file, never argv (integrations/tunnel.py).
    assert any(event.get("token_in_config") and not event.get("token_in_argv") for event in fake_ngrok.events())

    page.click("#tunnel-stop")
    page.wait_for_selector("#tunnel-status[data-status=stopped]")
    assert page.locator("#tunnel-public-url").inner_text().strip() == "—"
    assert "tunnel stopped" in (page.locator(".messagelist").text_content() or "").lower()
    state = TunnelState.objects.get()
    assert state.desired == TunnelState.Desired.STOPPED and state.public_url == ""
    # The owner follows the recorded wish and stops the agent itself within a few reconciliations.
    assert agent_stops(str(fake_ngrok.path)), "the agent still runs after Stop"
    assert console.leaks() == []
