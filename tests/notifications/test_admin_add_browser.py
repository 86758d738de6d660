"""Adding a webhook sink in the console, in Chromium under the Content-Security-Policy: the
shown-once page's Copy button (console.js, `data-copy-from`, no inline script) copies the
whsec_ secret, and the browser reports no policy violation."""
from __future__ import annotations

from typing import Any

import pytest

from integrations import services as connection_services
from notifications.models import NotificationSink
from notifications.secrets import sink_secrets_read
from tests.e2e.browser import admin_login
from tests.e2e.console import ADMIN_PASSWORD, ADMIN_USERNAME

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]


def test_webhook_sink_added_in_the_browser_and_its_secret_copied(page: Any, live_server: Any,
                                                                  superuser: Any) -> None:
    violations: list[str] = []
    page.on("console", lambda message: violations.append(message.text)
            if "Content Security Policy" in message.text else None)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    receiver = connection_services.connection_create(name="receiver", connection_type="generic_http",
                                          credentials={"base_url": "https://receiver.example.com/hook"})
    admin_login(page, live_server.url, ADMIN_USERNAME, ADMIN_PASSWORD)
    page.goto(f"{live_server.url}/admin/notifications/notificationsink/")
    page.click(".object-tools a.addlink")
    page.wait_for_url("**/add/")
    page.fill("#id_name", "hook")
    page.select_option("#id_kind", "webhook")
    page.select_option("#id_connection", value=str(receiver.pk))
    page.fill("#id_settings", "{}")
    page.click("input[name=_save]")
    page.wait_for_selector("#sink-secret-1")
    secret = sink_secrets_read(NotificationSink.objects.get(name="hook"))["signing_secret"]
    assert page.inner_text("#sink-secret-1").strip() == secret
    button = page.locator("button.console-copy")
    button.click()
    page.wait_for_function("() => document.querySelector('button.console-copy').textContent === 'Copied'")
    assert page.evaluate("() => navigator.clipboard.readText()") == secret
    page.click("#sink-change-link")
    page.wait_for_selector("#id_name")
    assert secret not in page.content()
    assert not violations, violations
