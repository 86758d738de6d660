"""The peers themselves work: driven with requests-oauthlib / oauthlib and plain requests only."""
from __future__ import annotations

import os
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests
from oauthlib.oauth2 import BackendApplicationClient
from oauthlib.oauth2.rfc6749.errors import InvalidClientError, InvalidGrantError
from requests_oauthlib import OAuth2Session

from tests.peers import oidc_peer as oidc_peer_module
from tests.peers.device_stub import DEVICE_CODE_GRANT, DeviceStub, pending, slow_down, token
from tests.peers.oidc_peer import POST_AUTH_CLIENT, OIDCClient, OIDCPeer, PeerUnavailable

pytestmark = pytest.mark.usefixtures("oauthlib_loopback_http")

TIMEOUT = (3, 10)


def query(url: str) -> dict[str, str]:
    return {key: values[-1] for key, values in parse_qs(urlsplit(url).query).items()}


def code_flow_session(peer: OIDCPeer, client: OIDCClient, scope: str = "api:read") -> OAuth2Session:
    return OAuth2Session(client.client_id, redirect_uri=client.redirect_uri, scope=scope.split(), pkce="S256")


def authorize(peer: OIDCPeer, client: OIDCClient | None = None, scope: str = "api:read") -> dict[str, Any]:
    """Code + PKCE flow to a token, the way the service's client will do it."""
    client = client or peer.client()
    session = code_flow_session(peer, client, scope)
    url, _state = session.authorization_url(peer.authorization_endpoint)
    callback = peer.complete_authorization(url)
    return session.fetch_token(
        peer.token_endpoint,
        authorization_response=callback,
        client_secret=client.client_secret,
        include_client_id=client.token_endpoint_auth_method == "client_secret_post",
        timeout=TIMEOUT,
    )


def refresh(peer: OIDCPeer, refresh_token: str, client: OIDCClient | None = None) -> dict[str, Any]:
    client = client or peer.client()
    session = OAuth2Session(client.client_id)
    return session.refresh_token(
        peer.token_endpoint,
        refresh_token=refresh_token,
        auth=(client.client_id, client.client_secret),
        timeout=TIMEOUT,
    )


def device_start(peer: OIDCPeer, scope: str = "api:read") -> dict[str, Any]:
    client = peer.client()
    response = requests.post(
        peer.device_authorization_endpoint,
        data={"scope": scope},
        auth=(client.client_id, client.client_secret),
        timeout=TIMEOUT,
    )
    assert response.status_code == 200, response.text
    return response.json()


def device_poll(endpoint: str, device_code: str, client: OIDCClient) -> requests.Response:
    return requests.post(
        endpoint,
        data={"grant_type": DEVICE_CODE_GRANT, "device_code": device_code},
        auth=(client.client_id, client.client_secret),
        timeout=TIMEOUT,
    )


# -- authorization code + PKCE -----------------------------------------------------------


def test_code_flow_with_pkce_returns_tokens_and_iss(oidc: OIDCPeer) -> None:
    client = oidc.client()
    session = code_flow_session(oidc, client)
    url, state = session.authorization_url(oidc.authorization_endpoint)

    callback = oidc.complete_authorization(url)

    assert callback.startswith(client.redirect_uri + "?")
    params = query(callback)
    assert params["state"] == state
    assert params["iss"] == oidc.issuer
    token_ = session.fetch_token(
        oidc.token_endpoint, authorization_response=callback, client_secret=client.client_secret, timeout=TIMEOUT
    )
    assert token_["access_token"]
    assert token_["refresh_token"]
    assert token_["expires_in"] == oidc.config.access_token_ttl
    assert token_["scope"] == ["api:read"]


def test_code_without_pkce_redirects_with_invalid_request(oidc: OIDCPeer) -> None:
    client = oidc.client()
    session = OAuth2Session(client.client_id, redirect_uri=client.redirect_uri, scope=["api:read"])
    url, _state = session.authorization_url(oidc.authorization_endpoint)

    params = query(oidc.complete_authorization(url))

    assert params["error"] == "invalid_request"
    assert "code" not in params


def test_plain_pkce_method_redirects_with_invalid_request(oidc: OIDCPeer) -> None:
    client = oidc.client()
    url = oidc.authorization_endpoint + "?" + urlencode({
        "response_type": "code",
        "client_id": client.client_id,
        "redirect_uri": client.redirect_uri,
        "scope": "api:read",
        "state": "s1",
        "code_challenge": "x" * 43,
        "code_challenge_method": "plain",
    })

    params = query(oidc.complete_authorization(url))

    assert params["error"] == "invalid_request"


def test_code_with_wrong_verifier_is_invalid_grant(oidc: OIDCPeer) -> None:
    client = oidc.client()
    session = code_flow_session(oidc, client)
    url, _state = session.authorization_url(oidc.authorization_endpoint)
    callback = oidc.complete_authorization(url)

    response = requests.post(
        oidc.token_endpoint,
        data={
            "grant_type": "authorization_code",
            "code": query(callback)["code"],
            "redirect_uri": client.redirect_uri,
            "code_verifier": "w" * 64,
        },
        auth=(client.client_id, client.client_secret),
        timeout=TIMEOUT,
    )

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


def test_user_denies_redirects_with_access_denied(oidc: OIDCPeer) -> None:
    session = code_flow_session(oidc, oidc.client())
    url, state = session.authorization_url(oidc.authorization_endpoint)

    params = query(oidc.deny_authorization(url))

    assert params["error"] == "access_denied"
    assert params["state"] == state
    assert "code" not in params


def test_client_secret_post_client_gets_tokens(oidc: OIDCPeer) -> None:
    token_ = authorize(oidc, oidc.client(POST_AUTH_CLIENT.client_id))

    assert token_["access_token"]
    assert oidc.token_request_log()[-1] == {
        "grant_type": "authorization_code",
        "client_id": POST_AUTH_CLIENT.client_id,
        "status": 200,
        "error": None,
    }


def test_openid_scope_returns_id_token(oidc: OIDCPeer) -> None:
    token_ = authorize(oidc, scope="openid")

    assert token_["id_token"].count(".") == 2
    assert token_["refresh_token"]


def test_registered_client_with_own_redirect_uri_completes_flow(oidc: OIDCPeer) -> None:
    client = oidc.register(OIDCClient(
        client_id="late-client",
        client_secret="late-secret",
        redirect_uris=("http://testserver/oauth/late/callback",),
    ))

    token_ = authorize(oidc, client)

    assert token_["access_token"]
    assert oidc.client("late-client") == client


# -- refresh, rotation, counters, revocation ---------------------------------------------


def test_refresh_rotates_and_old_refresh_token_is_rejected(oidc: OIDCPeer) -> None:
    first = authorize(oidc)

    second = refresh(oidc, first["refresh_token"])

    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    with pytest.raises(InvalidGrantError):
        refresh(oidc, first["refresh_token"])


def test_token_counters_count_by_grant_type_and_reset(oidc: OIDCPeer) -> None:
    first = authorize(oidc)
    refresh(oidc, first["refresh_token"])

    assert oidc.token_requests("authorization_code") == 1
    assert oidc.token_requests("refresh_token") == 1
    assert oidc.token_requests() == 2
    oidc.reset_counters()
    assert oidc.token_requests() == 0


def test_revoke_grants_makes_refresh_invalid_grant(oidc: OIDCPeer) -> None:
    token_ = authorize(oidc)

    assert oidc.revoke_grants(oidc.client().client_id) >= 1

    with pytest.raises(InvalidGrantError):
        refresh(oidc, token_["refresh_token"])
    assert oidc.token_request_log()[-1]["error"] == "invalid_grant"


# -- client credentials ------------------------------------------------------------------


def test_client_credentials_returns_access_token(oidc: OIDCPeer) -> None:
    client = oidc.client()
    session = OAuth2Session(client=BackendApplicationClient(client_id=client.client_id, scope=["api:read"]))

    token_ = session.fetch_token(
        oidc.token_endpoint, client_id=client.client_id, client_secret=client.client_secret, timeout=TIMEOUT
    )

    assert token_["access_token"]
    assert token_["scope"] == ["api:read"]
    assert "refresh_token" not in token_
    assert oidc.token_requests("client_credentials") == 1


def test_client_credentials_wrong_secret_is_invalid_client(oidc: OIDCPeer) -> None:
    client = oidc.client()
    session = OAuth2Session(client=BackendApplicationClient(client_id=client.client_id))

    with pytest.raises(InvalidClientError):
        session.fetch_token(oidc.token_endpoint, client_id=client.client_id, client_secret="wrong", timeout=TIMEOUT)
    assert oidc.token_request_log() == [
        {"grant_type": "client_credentials", "client_id": client.client_id, "status": 401, "error": "invalid_client"}
    ]


# -- device authorization (RFC 8628) -----------------------------------------------------


def test_device_flow_pending_then_approved_issues_tokens(oidc: OIDCPeer) -> None:
    client = oidc.client()
    started = device_start(oidc)
    assert started["interval"] == oidc.config.device_interval
    assert started["verification_uri"] == oidc.device_verification_uri

    assert device_poll(oidc.token_endpoint, started["device_code"], client).json()["error"] == "authorization_pending"
    oidc.approve_device(started["user_code"])
    granted = device_poll(oidc.token_endpoint, started["device_code"], client)

    assert granted.status_code == 200, granted.text
    assert granted.json()["access_token"]
    assert granted.json()["refresh_token"]
    assert oidc.token_requests(DEVICE_CODE_GRANT) == 2


def test_device_flow_denied_is_access_denied(oidc: OIDCPeer) -> None:
    started = device_start(oidc)

    oidc.deny_device(started["user_code"])

    answer = device_poll(oidc.token_endpoint, started["device_code"], oidc.client())
    assert answer.status_code == 400
    assert answer.json()["error"] == "access_denied"


def test_device_code_expired_is_expired_token(oidc: OIDCPeer) -> None:
    started = device_start(oidc)

    oidc.expire_device_code(started["user_code"])

    answer = device_poll(oidc.token_endpoint, started["device_code"], oidc.client())
    assert answer.status_code == 400
    assert answer.json()["error"] == "expired_token"


# -- the scripted device stub ------------------------------------------------------------


def test_device_stub_plays_script_and_records_polls(device_stub: DeviceStub) -> None:
    client = OIDCClient(client_id="stub-client", client_secret="stub-secret")
    device_stub.interval = 1
    device_stub.set_script([pending(), slow_down(), token("at-1")])
    started = requests.post(device_stub.device_authorization_endpoint, data={"client_id": "c"}, timeout=TIMEOUT).json()

    answers = [device_poll(device_stub.token_endpoint, started["device_code"], client) for _ in range(4)]

    assert started["interval"] == 1
    assert [answer.json().get("error") for answer in answers] == [
        "authorization_pending", "slow_down", None, "server_error"
    ]
    assert answers[2].json()["access_token"] == "at-1"
    assert len(device_stub.token_polls()) == 4
    assert len(device_stub.poll_gaps()) == 3
    assert device_stub.token_polls()[0].form["grant_type"] == DEVICE_CODE_GRANT
    assert device_stub.remaining == 0


def test_device_stub_unknown_device_code_keeps_script(device_stub: DeviceStub) -> None:
    device_stub.set_script([token()])

    answer = device_poll(device_stub.token_endpoint, "not-the-code", OIDCClient("c", "s"))

    assert answer.json()["error"] == "invalid_grant"
    assert device_stub.remaining == 1


# -- the harness itself ------------------------------------------------------------------


def test_stop_leaves_no_node_process() -> None:
    peer = OIDCPeer().start()
    pid = peer.pid
    assert pid is not None and peer.running

    peer.stop()

    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not peer.running


def test_missing_node_modules_says_run_make_npm(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    monkeypatch.setattr(oidc_peer_module, "PROVIDER_PACKAGE", tmp_path / "absent" / "package.json")

    with pytest.raises(PeerUnavailable, match="make npm"):
        OIDCPeer().start()
