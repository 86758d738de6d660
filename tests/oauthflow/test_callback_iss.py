"""RFC 9207 at the callback (issue 12): when the provider's metadata advertises
``authorization_response_iss_parameter_supported``, a callback without ``iss`` (or with a wrong
one) is refused with a 4xx page and its code is never exchanged; a callback that does not
connect never answers 200."""
from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlencode

import pytest

from integrations import services as connection_services
from integrations.models import Connection
from oauthflow import grants, services
from oauthflow.models import OAuthState, OAuthToken
from synthorg.models import AuditEvent
from tests.oauthflow.conftest import query
from tests.peers.http_peer import HttpPeer, Reply
from tests.peers.oidc_peer import OIDCPeer

pytestmark = pytest.mark.django_db

TOKEN_BODY = json.dumps({"access_token": "at-iss-test", "token_type": "Bearer", "expires_in": 3600}).encode()
JSON = {"Content-Type": "application/json"}


# --- against the real provider (oidc-provider advertises RFC 9207) -----------------------------

def test_real_provider_advertises_iss_and_the_state_remembers_it(oidc: OIDCPeer, make_connection: Any) -> None:
    assert oidc.discovery["authorization_response_iss_parameter_supported"] is True
    started = services.authorization_start(connection_name=make_connection().name)
    assert OAuthState.objects.get(state=started.state).iss_required is True


def test_callback_without_iss_is_refused_when_metadata_advertises_it(
        oidc: OIDCPeer, make_connection: Any, client: Any) -> None:
    connection = make_connection()
    started = services.authorization_start(connection_name=connection.name)
    params = query(oidc.complete_authorization(started.authorization_url))
    assert params["iss"] == oidc.issuer
    del params["iss"]  # what a mix-up attacker's server (or a stripping proxy) sends

    page = client.get("/api/v1/oauth/callback", params)

    assert page.status_code == 400
    assert b'data-code="issuer_missing"' in page.content and b'data-outcome="failed"' in page.content
    assert oidc.token_requests("authorization_code") == 0
    assert not OAuthToken.objects.filter(connection=connection).exists()
    assert AuditEvent.objects.filter(action="oauth.connect", outcome="failure", target=connection.name,
                                     reason="issuer missing").exists()
    # A replay answers the same refusal, with the same status, and exchanges nothing.
    again = client.get("/api/v1/oauth/callback", {**params, "iss": oidc.issuer})
    assert again.status_code == 400 and b"issuer_missing" in again.content
    assert oidc.token_requests("authorization_code") == 0


def test_callback_with_the_right_iss_still_connects(oidc: OIDCPeer, make_connection: Any,
                                                    connect_code_flow: Callable[..., Any]) -> None:
    page = connect_code_flow(make_connection())
    assert page.status_code == 200 and b'data-outcome="succeeded"' in page.content


# --- a provider we script: with, without and with foreign metadata --------------------------------

@pytest.fixture
def provider() -> Iterator[HttpPeer]:
    with HttpPeer() as peer:
        peer.script("/token", Reply(200, TOKEN_BODY, JSON))
        yield peer


def _metadata(peer: HttpPeer, **overrides: Any) -> Reply:
    body = {"issuer": peer.url("").rstrip("/"), "authorization_endpoint": peer.url("/authorize"),
            "token_endpoint": peer.url("/token"), **overrides}
    return Reply(200, json.dumps(body).encode(), JSON)


@pytest.fixture
def scripted_connection(provider: HttpPeer) -> Connection:
    return connection_services.connection_create(name="scripted", connection_type="oauth_app", credentials={
        "client_id": "c", "client_secret": "s", "auth_url": provider.url("/authorize"),
        "token_url": provider.url("/token")})


def _callback(client: Any, state: str, **params: str) -> Any:
    return client.get("/api/v1/oauth/callback?" + urlencode({"state": state, "code": "code-1", **params}))


def _token_calls(peer: HttpPeer) -> int:
    return sum(1 for r in peer.received if r.path.startswith("/token"))


@pytest.mark.parametrize("where", ["/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"])
def test_scripted_metadata_with_flag_requires_iss(provider: HttpPeer, scripted_connection: Connection,
                                                  client: Any, where: str) -> None:
    provider.script(where, _metadata(provider, authorization_response_iss_parameter_supported=True))
    started = services.authorization_start(connection_name=scripted_connection.name)

    page = _callback(client, started.state)

    assert page.status_code == 400 and b"issuer_missing" in page.content
    assert _token_calls(provider) == 0


@pytest.mark.parametrize("metadata", [
    "absent",  # 404 at both well-known URLs: an older provider that never sends iss
    "flag_false",
    "other_issuer",  # RFC 8414 §3.3: a document naming another issuer must not be used
    "not_json",
])
def test_without_the_flag_a_callback_without_iss_connects(provider: HttpPeer, scripted_connection: Connection,
                                                          client: Any, metadata: str) -> None:
    well_known = "/.well-known/oauth-authorization-server"
    if metadata == "flag_false":
        provider.script(well_known, _metadata(provider, authorization_response_iss_parameter_supported=False))
    elif metadata == "other_issuer":
        provider.script(well_known, _metadata(provider, issuer="https://other.example",
                                              authorization_response_iss_parameter_supported=True))
    elif metadata == "not_json":
        provider.script(well_known, Reply(200, b"<html>", {"Content-Type": "text/html"}))
    started = services.authorization_start(connection_name=scripted_connection.name)
    assert OAuthState.objects.get(state=started.state).iss_required is False

    page = _callback(client, started.state)

    assert page.status_code == 200 and b'data-outcome="succeeded"' in page.content
    assert _token_calls(provider) == 1


def test_wrong_iss_is_refused_with_400_even_without_metadata(provider: HttpPeer, scripted_connection: Connection,
                                                             client: Any) -> None:
    started = services.authorization_start(connection_name=scripted_connection.name)
    page = _callback(client, started.state, iss="https://attacker.example")
    assert page.status_code == 400 and b"issuer_mismatch" in page.content
    assert _token_calls(provider) == 0


@pytest.mark.parametrize(("params", "code"), [
    ({"error": "access_denied"}, b"access_denied"),
    ({"code": ""}, b"missing_code"),
])
def test_any_callback_that_does_not_connect_is_4xx(provider: HttpPeer, scripted_connection: Connection,
                                                   client: Any, params: dict[str, str], code: bytes) -> None:
    started = services.authorization_start(connection_name=scripted_connection.name)
    page = _callback(client, started.state, **params)
    assert page.status_code == 400 and code in page.content and b'data-outcome="failed"' in page.content


def test_failed_code_exchange_is_4xx(provider: HttpPeer, scripted_connection: Connection, client: Any) -> None:
    provider.script("/token", Reply(400, json.dumps({"error": "invalid_grant"}).encode(), JSON))
    started = services.authorization_start(connection_name=scripted_connection.name)
    page = _callback(client, started.state)
    assert page.status_code == 400 and b"invalid_grant" in page.content


def test_metadata_urls_follow_rfc8414_and_oidc_discovery() -> None:
    assert grants.metadata_urls("https://idp.example") == [
        "https://idp.example/.well-known/oauth-authorization-server",
        "https://idp.example/.well-known/openid-configuration"]
    assert grants.metadata_urls("https://idp.example/tenant/") == [
        "https://idp.example/.well-known/oauth-authorization-server/tenant",
        "https://idp.example/tenant/.well-known/openid-configuration"]


def test_unavailable_metadata_is_asked_for_once_and_does_not_block_the_start(
        provider: HttpPeer, scripted_connection: Connection) -> None:
    provider.script("/.well-known/oauth-authorization-server", Reply(503, b"down"))
    started = services.authorization_start(connection_name=scripted_connection.name)
    assert OAuthState.objects.get(state=started.state).iss_required is False
    assert sum(1 for r in provider.received if r.path.startswith("/.well-known/")) == 1
