"""http_request against a real local peer: which answers are returned, which raise which error."""
from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest

from synthorg.http import PermanentError, TransientError, http_request
from tests.peers.http_peer import ConnectRecorder, FakeDns, HttpPeer, Reply

FAST = (2.0, 2.0)


@pytest.fixture
def peer() -> Iterator[HttpPeer]:
    with HttpPeer() as running:
        yield running


@pytest.fixture(autouse=True)
def only_loopback(monkeypatch: pytest.MonkeyPatch) -> ConnectRecorder:
    return ConnectRecorder().install(monkeypatch)


@pytest.mark.parametrize("status", [200, 201, 204])
def test_2xx_returns_response(peer: HttpPeer, status: int) -> None:
    response = http_request("GET", peer.url(f"/status/{status}"), timeout=FAST)
    assert response.status_code == status


def test_body_is_read_and_socket_released(peer: HttpPeer) -> None:
    response = http_request("GET", peer.url("/echo"), timeout=FAST)
    assert response.json()["method"] == "GET"


@pytest.mark.parametrize("status", [500, 502, 503, 504, 408, 429])
def test_5xx_408_429_raise_transient(peer: HttpPeer, status: int) -> None:
    with pytest.raises(TransientError) as caught:
        http_request("GET", peer.url(f"/status/{status}"), timeout=FAST)
    assert caught.value.status == status
    assert caught.value.response.status_code == status


@pytest.mark.parametrize("status", [400, 401, 403, 404, 405, 410, 422])
def test_other_4xx_raise_permanent(peer: HttpPeer, status: int) -> None:
    with pytest.raises(PermanentError) as caught:
        http_request("GET", peer.url(f"/status/{status}"), timeout=FAST)
    assert not isinstance(caught.value, TransientError)
    assert caught.value.status == status
    assert caught.value.response.content == f"status {status}".encode()


def test_head_refused_with_405_then_get_succeeds(peer: HttpPeer) -> None:
    with pytest.raises(PermanentError) as caught:
        http_request("HEAD", peer.url("/head-405"), timeout=FAST)
    assert caught.value.status == 405
    assert http_request("GET", peer.url("/head-405"), timeout=FAST).content == b"ok"


def test_redirect_is_returned_not_followed(peer: HttpPeer) -> None:
    response = http_request("GET", peer.url("/redirect"), timeout=FAST, headers={"Authorization": "Bearer t"})
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/status/200")
    assert [r.path for r in peer.received] == ["/redirect"]


def test_allow_redirects_true_is_refused(peer: HttpPeer) -> None:
    with pytest.raises(ValueError, match="never followed"):
        http_request("GET", peer.url("/redirect"), timeout=FAST, allow_redirects=True)
    assert peer.received == []


def test_hanging_peer_raises_transient_read_timeout(peer: HttpPeer) -> None:
    with pytest.raises(TransientError, match="read timeout"):
        http_request("GET", peer.url("/hang/30"), timeout=(2.0, 0.2))


def test_connect_timeout_raises_transient(peer: HttpPeer, monkeypatch: pytest.MonkeyPatch) -> None:
    def slow_connect(sock: socket.socket, address: Any) -> None:
        raise TimeoutError("timed out")

    monkeypatch.setattr(socket.socket, "connect", slow_connect)
    with pytest.raises(TransientError, match="connect timeout"):
        http_request("GET", peer.url("/status/200"), timeout=(0.2, 2.0))


def test_connection_refused_raises_transient() -> None:
    with HttpPeer() as stopped:
        url = stopped.url("/status/200")
    with pytest.raises(TransientError, match="connection failed"):
        http_request("GET", url, timeout=FAST)


def test_connection_reset_raises_transient(peer: HttpPeer) -> None:
    peer.script("/reset", Reply(reset=True))
    with pytest.raises(TransientError):
        http_request("GET", peer.url("/reset"), timeout=FAST)
    assert len(peer.received) == 1


def test_unknown_name_raises_transient_dns_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    FakeDns().install(monkeypatch).answer("gone.test", None)
    with pytest.raises(TransientError, match="DNS failure"):
        http_request("GET", "http://gone.test/x", timeout=FAST)


def test_body_over_max_bytes_raises_permanent(peer: HttpPeer) -> None:
    with pytest.raises(PermanentError, match="larger than 100 bytes"):
        http_request("GET", peer.url("/bytes/101"), timeout=FAST, max_bytes=100)
    assert http_request("GET", peer.url("/bytes/100"), timeout=FAST, max_bytes=100).content == b"x" * 100


def test_body_over_max_bytes_without_content_length_raises_permanent(peer: HttpPeer,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    # A peer may omit Content-Length (HTTP/1.0, close-delimited); the byte count still stops it.
    from requests.structures import CaseInsensitiveDict

    import synthorg.http as http_module

    real_read = http_module._read_body

    def without_length(method: str, where: str, response: Any, max_bytes: int) -> None:
        response.headers = CaseInsensitiveDict({k: v for k, v in response.headers.items() if k != "Content-Length"})
        real_read(method, where, response, max_bytes)

    monkeypatch.setattr(http_module, "_read_body", without_length)
    with pytest.raises(PermanentError, match="larger than 100 bytes"):
        http_request("GET", peer.url("/bytes/5000"), timeout=FAST, max_bytes=100)


def test_tls_failure_raises_permanent(peer: HttpPeer) -> None:
    # The peer speaks plain HTTP; a TLS client hello to it fails the handshake.
    with pytest.raises(PermanentError, match="TLS failure"):
        http_request("GET", peer.url("/status/200").replace("http://", "https://"), timeout=FAST)


@pytest.mark.parametrize("timeout", [None, 5, (5, None), (0, 5), (5, -1), (float("inf"), 5)])
def test_missing_or_bad_timeout_is_refused(peer: HttpPeer, timeout: Any) -> None:
    with pytest.raises(ValueError, match="timeout"):
        http_request("GET", peer.url("/status/200"), timeout=timeout)
    assert peer.received == []


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/file", "file:///etc/passwd", "gopher://127.0.0.1:70/x"])
def test_non_http_scheme_raises_permanent(url: str) -> None:
    with pytest.raises(PermanentError, match="absolute http:// or https:// URL"):
        http_request("GET", url, timeout=FAST)


def test_environment_proxy_is_ignored(peer: HttpPeer, monkeypatch: pytest.MonkeyPatch) -> None:
    # A proxy would be checked by the guard instead of the destination, so it is never used.
    monkeypatch.setenv("HTTP_PROXY", "http://203.0.113.9:3128")
    monkeypatch.setenv("http_proxy", "http://203.0.113.9:3128")
    assert http_request("GET", peer.url("/status/200"), timeout=FAST).status_code == 200
