"""The pages work under the Content-Security-Policy, in Chromium (issue 12 §6).

Every page carries the policy; the browser reports no violation (Chromium logs each one to the
console as "... violates the following Content Security Policy directive ..."), and each page
still does its job: the admin login logs in, the dashboard shows its cards, a connection's page
renders its badge and copy button, Swagger UI (served from drf-spectacular-sidecar, not a CDN)
lists the operations, the OAuth callback page is styled.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from integrations import services as connection_services
from tests.e2e.browser import admin_login
from tests.e2e.console import ADMIN_PASSWORD, ADMIN_USERNAME

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]


class Watched:
    """A tab that records CSP violations and every document's policy header."""

    def __init__(self, page: Any, base_url: str) -> None:
        self.page, self.base_url = page, base_url
        self.violations: list[str] = []
        self.requests_off_origin: list[str] = []
        self.documents_without_policy: list[str] = []
        page.on("console", self._on_console)
        page.on("request", self._on_request)
        page.on("response", self._on_response)

    def _on_console(self, message: Any) -> None:
        if "Content Security Policy" in message.text:
            self.violations.append(message.text)

    def _on_request(self, request: Any) -> None:
        if not request.url.startswith(self.base_url) and not request.url.startswith("data:"):
            self.requests_off_origin.append(request.url)

    def _on_response(self, response: Any) -> None:
        if response.request.resource_type == "document" and "content-security-policy" not in response.headers:
            self.documents_without_policy.append(response.url)

    def goto(self, path: str) -> Any:
        response = self.page.goto(self.base_url + path)
        assert response is not None
        return response


@pytest.fixture
def tab(page: Any, live_server: Any) -> Iterator[Watched]:
    watched = Watched(page, live_server.url)
    yield watched
    assert not watched.violations, watched.violations
    assert not watched.requests_off_origin, watched.requests_off_origin  # no CDN, nothing external
    assert not watched.documents_without_policy, watched.documents_without_policy


def test_admin_login_dashboard_and_a_connection_page_work_under_the_policy(tab: Watched, superuser: Any) -> None:
    connection = connection_services.connection_create(
        name="gh-csp", connection_type="github", credentials={"token": "t" * 20, "signing_secret": "s" * 20})
    response = tab.goto("/admin/login/")
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy and "unsafe" not in policy

    admin_login(tab.page, tab.base_url, ADMIN_USERNAME, ADMIN_PASSWORD)
    tab.page.wait_for_selector(".synthorg-dashboard .synthorg-card")
    # The console stylesheet applies (a static file, not an inline <style>).
    display = tab.page.eval_on_selector(".synthorg-dashboard", "e => getComputedStyle(e).display")
    assert display == "flex"

    tab.goto(f"/admin/integrations/connection/{connection.pk}/change/")
    badge = tab.page.locator(".health-badge").first
    assert badge.inner_text().strip().lower() == "unknown"
    colour = badge.evaluate("e => getComputedStyle(e).backgroundColor")
    assert colour == "rgb(117, 117, 117)"  # the badge's colour from console.css, no inline style

    tab.goto("/admin/integrations/connection/")
    tab.page.wait_for_selector("#result_list")


def test_swagger_ui_renders_the_operations_from_the_package(tab: Watched) -> None:
    response = tab.goto("/api/docs/")
    assert "content-security-policy" in response.headers
    tab.page.wait_for_selector(".opblock", timeout=20_000)
    assert tab.page.locator(".opblock").count() > 20
    assert tab.page.locator(".opblock-summary-path", has_text="/api/v1/connections").first.is_visible()


def test_oauth_callback_page_is_styled_under_the_policy(tab: Watched) -> None:
    response = tab.goto("/api/v1/oauth/callback?state=unknown-state&code=x")
    assert response.status == 400
    # The page's own <style> carries the nonce: it applied.
    width = tab.page.eval_on_selector("body", "e => getComputedStyle(e).maxWidth")
    assert width != "none"
