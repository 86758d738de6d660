"""The admin in a real browser: log in, see the console, no secret in any page's HTML."""
from __future__ import annotations

from typing import Any

import pytest

from integrations import services
from tests.e2e.browser import admin_login, screenshot

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

CANARY = "ghp_browserCanary_0123456789abcdef"


def test_operator_logs_in_and_sees_connections_without_secrets(live_server: Any, page: Any, superuser: Any) -> None:
    services.connection_create(name="gh-browser", connection_type="github", credentials={"token": CANARY},
                               actor=superuser)
    admin_login(page, live_server.url, "root", "pw-root-123")
    screenshot(page, "admin-index")
    assert "Operator console" in page.content()
    page.goto(f"{live_server.url}/admin/integrations/connection/")
    assert "gh-browser" in page.content()
    screenshot(page, "admin-connections")
    for path in ("/admin/", "/admin/integrations/connection/", "/admin/synthorg/auditevent/"):
        page.goto(live_server.url + path)
        assert CANARY not in page.content(), path
