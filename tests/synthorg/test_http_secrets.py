"""Nothing secret leaves through messages or logs: no query string, no Authorization, no body."""
from __future__ import annotations

import logging
import traceback
from collections.abc import Iterator

import pytest

from synthorg.http import ExternalServiceError, egress_session, http_request, safe_url
from tests.peers.http_peer import ConnectRecorder, FakeDns, HttpPeer

FAST = (2.0, 2.0)
QUERY_SECRET = "qs-secret-4242"
HEADER_SECRET = "hdr-secret-9191"
BODY_SECRET = "body-secret-7373"
PATH_SECRET = "T000/B000/path-secret-5151"
SECRETS = (QUERY_SECRET, HEADER_SECRET, BODY_SECRET, "path-secret-5151")


@pytest.fixture
def peer(monkeypatch: pytest.MonkeyPatch) -> Iterator[HttpPeer]:
    ConnectRecorder().install(monkeypatch)
    with HttpPeer() as running:
        yield running


def _logged(caplog: pytest.LogCaptureFixture) -> str:
    parts = []
    for record in caplog.records:
        parts.append(record.getMessage())
        if record.exc_info:
            parts.append("".join(traceback.format_exception(*record.exc_info)))
    return "\n".join(parts)


def _failure_text(exc: BaseException) -> str:
    """Everything a logged traceback of the error would show, causes included."""
    return str(exc) + "".join(traceback.format_exception(exc))


@pytest.mark.parametrize("path", ["/status/200", "/redirect", "/status/401", "/status/503", "/hang/30", "/bytes/500"])
def test_secrets_never_reach_messages_or_logs(peer: HttpPeer, caplog: pytest.LogCaptureFixture, path: str) -> None:
    caplog.set_level(logging.DEBUG)
    url = peer.url(f"{path}?access_token={QUERY_SECRET}&x=1")
    try:
        http_request("POST", url, timeout=(2.0, 0.3), max_bytes=100,
                     headers={"Authorization": f"Bearer {HEADER_SECRET}"}, data=BODY_SECRET)
    except ExternalServiceError as exc:
        text = _failure_text(exc)
        assert "access_token" not in text
        for secret in SECRETS:
            assert secret not in text
    logged = _logged(caplog)
    assert "->" in logged or "after" in logged  # the wrapper did log this call
    assert "access_token" not in logged
    for secret in SECRETS:
        assert secret not in logged
    # The peer did get them: the test would pass vacuously if nothing had been sent.
    assert QUERY_SECRET in peer.received[0].path
    assert peer.received[0].headers["Authorization"] == f"Bearer {HEADER_SECRET}"


def test_urllib3_debug_log_has_no_query_string(peer: HttpPeer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    http_request("GET", peer.url(f"/status/200?token={QUERY_SECRET}"), timeout=FAST)
    urllib3_messages = [r.getMessage() for r in caplog.records if r.name.startswith("urllib3")]
    assert any("/status/200" in m for m in urllib3_messages)
    assert not any(QUERY_SECRET in m for m in urllib3_messages)


def test_log_names_method_safe_url_status_and_connection(peer: HttpPeer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="synthorg.http")
    http_request("GET", peer.url("/status/204?k=v"), timeout=FAST, connection_id=17)
    (record,) = [r for r in caplog.records if r.name == "synthorg.http"]
    message = record.getMessage()
    assert message.startswith(f"GET http://127.0.0.1:{peer.port}/status/204 -> 204 in ")
    assert message.endswith("(connection 17)")


def test_dns_failure_message_has_no_query(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    FakeDns().install(monkeypatch).answer("gone.test", None)
    with pytest.raises(ExternalServiceError) as caught:
        http_request("GET", f"http://gone.test/x?key={QUERY_SECRET}", timeout=FAST)
    assert str(caught.value) == "GET http://gone.test/x: DNS failure (gaierror)"
    assert QUERY_SECRET not in _failure_text(caught.value)
    assert QUERY_SECRET not in _logged(caplog)


def test_hide_path_keeps_secret_path_out(peer: HttpPeer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="synthorg.http")
    with pytest.raises(ExternalServiceError) as caught:
        http_request("POST", peer.url(f"/services/{PATH_SECRET}"), timeout=FAST, hide_path=True, json={})
    assert caught.value.status == 404
    assert "path-secret" not in str(caught.value)
    assert "path-secret" not in _logged(caplog)
    assert f"127.0.0.1:{peer.port}/…" in str(caught.value)


def test_session_transport_error_has_no_query(peer: HttpPeer) -> None:
    with egress_session((2.0, 0.2)) as session, pytest.raises(ExternalServiceError) as caught:
        session.get(peer.url(f"/hang/30?code={QUERY_SECRET}"))
    assert QUERY_SECRET not in _failure_text(caught.value)


@pytest.mark.parametrize(("url", "safe"), [
    ("https://user:pw@example.test/a/b?token=x#frag", "https://example.test/a/b"),
    ("http://example.test", "http://example.test/"),
    ("http://example.test:8080/p;params?x", "http://example.test:8080/p;params"),
    ("http://[::1]:9/x?y", "http://[::1]:9/x"),
    ("http://[::1/x", "<invalid URL>"),
])
def test_safe_url_drops_credentials_query_and_fragment(url: str, safe: str) -> None:
    assert safe_url(url) == safe
