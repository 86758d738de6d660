"""Journey 3: Connect an oauth_app connection from its change page, logging in and consenting at
the real local authorization server (tests/peers/oidc) in the same browser tab."""
from __future__ import annotations

import json
import uuid
from typing import Any
from urllib.parse import urljoin

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


def test_connect_runs_code_flow_at_real_provider_and_shows_token_status(
        console: Console, oauth_connection: Connection, oidc: OIDCPeer) -> None:
    page = console.page
    console.goto(f"/admin/integrations/connection/{oauth_connection.pk}/change/")
    console.shot("console-oauth-connection")
    page.click(".field-oauth_connect_link #oauth-console")
    page.wait_for_selector("#connect-form")
    assert page.get_attribute("#oauth-status", "data-status") != "active"
    console.shot("console-oauth-connect")

    page.click("#connect-button")
    page.wait_for_url(oidc.issuer + "/interaction/**")
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

    # Token status, never the token: the connection's console page and the tokens list.
    page.get_by_role("link", name=f"Back to connection {oauth_connection.name}").click()
    page.wait_for_selector(".field-oauth_connect_link")
    page.click(".field-oauth_connect_link #oauth-console")
    page.wait_for_selector("#oauth-status[data-status=active]")
    assert "api:read" in page.locator("#token-status").inner_text()
    console.shot("console-oauth-token-status")
    console.goto("/admin/oauthflow/oauthtoken/")
    row = page.locator("#result_list tr", has_text=oauth_connection.name)
    assert row.locator(".oauth-badge").inner_text() == "connected"  # a worded badge (issue 13 §6)
    console.shot("console-oauth-tokens")
    assert console.leaks() == []


def test_change_page_connect_button_reaches_the_provider(console: Console, oauth_connection: Connection,
                                                         oidc: OIDCPeer) -> None:
    page = console.page
    console.goto(f"/admin/integrations/connection/{oauth_connection.pk}/change/")
    page.locator(".field-oauth_connect_link a", has_text="Connect").first.click()
    page.wait_for_selector("#connect-button")
    with page.expect_navigation() as navigation:
        page.get_by_role("button", name="Connect with the provider").click()
    response = navigation.value
    assert response is not None and response.status != 403, "CSRF refused the connect form (Origin: null)"
    assert page.url.startswith(oidc.issuer)
