"""Journey 3: Connect an oauth_app connection from its change page, logging in and consenting at
the real local authorization server (tests/peers/oidc) in the same browser tab."""
from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urljoin, urlsplit

import pytest

from integrations import services as connection_services
from integrations.models import Connection
from oauthflow import services as oauth_services
from oauthflow.models import OAuthToken
from tests.e2e.console import Console, console_fixture  # noqa: F401  (fixture `console`)
from tests.peers.oidc_peer import OIDCClient, OIDCPeer

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]

# Login, then consent: anything past this is the flow looping.
MAX_PROVIDER_STEPS = 6
SUBMIT_FORM_JS = """([action, fields]) => {
  const form = document.createElement("form");
  form.method = "POST";
  form.action = action;
  for (const [name, value] of Object.entries(fields)) {
    const input = document.createElement("input");
    input.type = "hidden"; input.name = name; input.value = value;
    form.appendChild(input);
  }
  document.body.appendChild(form);
  form.submit();
}"""


def answer_provider(page: Any, issuer: str, username: str = "alice") -> None:
    """Log in and consent at the peer. Its interaction pages are JSON naming the form actions
    (oidc/routes.js); the browser posts them as a user's form would, carrying the peer's cookies."""
    for _ in range(MAX_PROVIDER_STEPS):
        if not page.url.startswith(issuer + "/interaction/"):
            return
        interaction = json.loads(page.locator("body").inner_text())
        action, fields = ("login", {"login": username}) if interaction["prompt"] == "login" else ("confirm", {})
        with page.expect_navigation():
            page.evaluate(SUBMIT_FORM_JS, [urljoin(page.url, interaction["actions"][action]), fields])
    pytest.fail(f"still on the provider after {MAX_PROVIDER_STEPS} steps: {page.url}")


@contextmanager
def origin_restored(page: Any, url: str) -> Iterator[None]:
    """Send the Origin a same-origin form POST has, on the connect page's POST only.

    templates/oauthflow/base.html sets `<meta name="referrer" content="no-referrer">` on every
    oauthflow page, so Chromium sends `Origin: null` with the connect form and Django's CSRF
    check answers 403 (test_connect_form_post_passes_csrf_in_a_browser shows it). Remove this
    once the connect page no longer uses that policy.
    """
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(url))

    def fix(route: Any) -> None:
        if route.request.method == "POST" and route.request.headers.get("origin") == "null":
            route.continue_(headers={**route.request.headers, "origin": origin})
        else:
            route.continue_()

    page.route(url, fix)
    try:
        yield
    finally:
        page.unroute(url, fix)


@pytest.fixture
def oauth_connection(console: Console, oidc: OIDCPeer, settings: Any) -> Connection:
    callback = console.url("/api/v1/oauth/callback")
    settings.SYNTHORG_CONFIG_OVERRIDES = {"oauth": {"redirect_uri_base": console.base_url}}
    client = oidc.register(OIDCClient(client_id=f"console-{uuid.uuid4().hex[:8]}",
                                      client_secret=console.canary(f"oidc-secret-canary-{uuid.uuid4().hex}"),
                                      redirect_uris=(callback,)))
    return connection_services.connection_create(
        name="oauth-journey", connection_type="oauth_app",
        credentials={"client_id": client.client_id, "client_secret": client.client_secret,
                     "auth_url": oidc.authorization_endpoint, "token_url": oidc.token_endpoint,
                     "scopes": ["api:read"]})


def test_connect_button_runs_code_flow_at_real_provider_and_shows_token_status(
        console: Console, oauth_connection: Connection, oidc: OIDCPeer) -> None:
    page = console.page
    console.goto(f"/admin/integrations/connection/{oauth_connection.pk}/change/")
    console.shot("console-oauth-connection")
    page.locator(".field-oauth_connect_link a", has_text="Connect").click()
    page.wait_for_url(f"**/oauth/connect/{oauth_connection.name}")
    console.shot("console-oauth-connect")

    with origin_restored(page, console.url(f"/api/v1/oauth/connect/{oauth_connection.name}")):
        page.get_by_role("button", name="Connect with the provider").click()
        page.wait_for_url(oidc.issuer + "/interaction/**")
    assert urlsplit(page.url).netloc == urlsplit(oidc.issuer).netloc
    answer_provider(page, oidc.issuer)

    page.wait_for_selector("[data-outcome]")
    assert page.url.startswith(console.url("/api/v1/oauth/callback?"))
    assert page.get_attribute("[data-outcome]", "data-outcome") == "succeeded"
    console.shot("console-oauth-success")
    token = OAuthToken.objects.get(connection=oauth_connection)
    assert token.status == OAuthToken.Status.ACTIVE
    assert oidc.token_requests("authorization_code") == 1
    access = oauth_services.get_access_token(oauth_connection)
    assert access
    console.canary(access)  # checked against everything received, including what came before

    # Token status, never the token: the admin list of tokens and the status endpoint.
    page.get_by_role("link", name=f"Back to connection {oauth_connection.name}").click()
    page.wait_for_selector(".field-oauth_connect_link")
    console.goto("/admin/oauthflow/oauthtoken/")
    row = page.locator("#result_list tr", has_text=oauth_connection.name)
    assert "active" in row.inner_text().lower()
    console.shot("console-oauth-tokens")
    console.goto(f"/api/v1/oauth/status/{oauth_connection.name}")
    status = json.loads(page.locator("body").inner_text())
    assert status["connected"] is True and status["status"] == "active"
    assert console.leaks() == []


@pytest.mark.xfail(strict=True, raises=AssertionError, reason="oauthflow/base.html's no-referrer policy makes Chromium send Origin: null, "
                   "which Django's CSRF check refuses (403); the connect page needs a same-origin policy")
def test_connect_form_post_passes_csrf_in_a_browser(console: Console, oauth_connection: Connection,
                                                    oidc: OIDCPeer) -> None:
    page = console.page
    console.goto(f"/api/v1/oauth/connect/{oauth_connection.name}")
    with page.expect_navigation() as navigation:
        page.get_by_role("button", name="Connect with the provider").click()
    response = navigation.value
    assert response is not None and response.status != 403
    assert page.url.startswith(oidc.issuer)
