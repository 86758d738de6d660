"""guard_session / egress_session: the guard for requests-oauthlib's OAuth2Session."""
from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from oauthlib.oauth2 import BackendApplicationClient, MissingTokenError
from requests_oauthlib import OAuth2Session

from synthorg.http import EgressRefused, PermanentError, TransientError, egress_session, guard_session
from tests.peers.http_peer import ConnectRecorder, FakeDns, HttpPeer, Reply, TlsIdentity

TOKEN = {"access_token": "at-1", "token_type": "Bearer", "expires_in": 3600}


@pytest.fixture
def connects(monkeypatch: pytest.MonkeyPatch) -> ConnectRecorder:
    return ConnectRecorder().install(monkeypatch)


@pytest.fixture
def peer(connects: ConnectRecorder) -> Iterator[HttpPeer]:
    with HttpPeer() as running:
        yield running


@pytest.fixture
def idp(connects: ConnectRecorder, monkeypatch: pytest.MonkeyPatch) -> Iterator[HttpPeer]:
    """An HTTPS peer for idp.test (oauthlib insists on https), trusted through REQUESTS_CA_BUNDLE."""
    FakeDns().install(monkeypatch).answer("idp.test", ["127.0.0.1"])
    with HttpPeer(tls=TlsIdentity.create("idp.test")) as running:
        assert running.tls is not None
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(running.tls.ca_path))
        yield running


def _client_credentials_session(timeout: tuple[float, float] = (2.0, 2.0)) -> OAuth2Session:
    return guard_session(OAuth2Session(client=BackendApplicationClient(client_id="cid")), timeout)


def test_oauth_session_fetches_token_through_guard(idp: HttpPeer, connects: ConnectRecorder) -> None:
    idp.script("/token", Reply(200, json.dumps(TOKEN).encode(), {"Content-Type": "application/json"}))
    with _client_credentials_session() as oauth:
        token = oauth.fetch_token(idp.url("/token", host="idp.test"), client_secret="cs-1", include_client_id=True)
    assert token["access_token"] == "at-1"
    (received,) = idp.received
    assert received.method == "POST"
    assert b"grant_type=client_credentials" in received.body
    assert connects.destinations == ["127.0.0.1"]


def test_oauth_session_refuses_metadata_token_url(connects: ConnectRecorder, monkeypatch: pytest.MonkeyPatch) -> None:
    FakeDns().install(monkeypatch).answer("idp.test", ["169.254.169.254"])
    with _client_credentials_session() as oauth, pytest.raises(EgressRefused):
        oauth.fetch_token("https://idp.test/token", client_secret="cs-1")
    assert connects.destinations == []


def test_oauth_session_does_not_follow_redirect(idp: HttpPeer) -> None:
    # fetch_token posts with allow_redirects=True; the 302 must not be followed. oauthlib
    # then finds no token in it, which is the caller's error to report.
    idp.script("/token", Reply(302, headers={"Location": idp.url("/stolen", host="idp.test")}))
    with _client_credentials_session() as oauth, pytest.raises(MissingTokenError):
        oauth.fetch_token(idp.url("/token", host="idp.test"), client_secret="cs-1")
    assert [r.path for r in idp.received] == ["/token"]


def test_session_fills_in_missing_timeout(idp: HttpPeer) -> None:
    with _client_credentials_session((2.0, 0.2)) as oauth, pytest.raises(TransientError, match="read timeout"):
        oauth.fetch_token(idp.url("/hang/30", host="idp.test"), client_secret="cs-1")  # no timeout= given


def test_session_returns_statuses_without_raising(peer: HttpPeer) -> None:
    with egress_session((2.0, 2.0)) as session:
        assert session.get(peer.url("/status/400")).status_code == 400
        assert session.get(peer.url("/redirect")).status_code == 302
    assert [r.path for r in peer.received] == ["/status/400", "/redirect"]


def test_session_refuses_explicit_proxy(peer: HttpPeer) -> None:
    with egress_session((2.0, 2.0)) as session, pytest.raises(PermanentError, match="proxies"):
        session.get(peer.url("/status/200"), proxies={"http": "http://203.0.113.9:3128"})
    assert peer.received == []


def test_guard_session_requires_a_timeout_pair() -> None:
    with pytest.raises(ValueError, match="timeout"):
        guard_session(OAuth2Session(client_id="cid"), None)  # type: ignore[arg-type]
