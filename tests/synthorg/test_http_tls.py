"""HTTPS through the guard: the socket goes to the checked address, the certificate is checked for the name."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from synthorg.http import PermanentError, http_request
from tests.peers.http_peer import ConnectRecorder, FakeDns, HttpPeer, TlsIdentity

FAST = (2.0, 2.0)


@pytest.fixture
def connects(monkeypatch: pytest.MonkeyPatch) -> ConnectRecorder:
    return ConnectRecorder().install(monkeypatch)


@pytest.fixture
def tls_peer(connects: ConnectRecorder, monkeypatch: pytest.MonkeyPatch) -> Iterator[HttpPeer]:
    dns = FakeDns().install(monkeypatch)
    dns.answer("good.test", ["127.0.0.1"])
    dns.answer("other.test", ["127.0.0.1"])
    with HttpPeer(tls=TlsIdentity.create("good.test")) as running:
        yield running


def test_certificate_for_the_name_is_accepted(tls_peer: HttpPeer, connects: ConnectRecorder,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    assert tls_peer.tls is not None
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tls_peer.tls.ca_path))
    response = http_request("GET", tls_peer.url("/echo", host="good.test"), timeout=FAST)
    assert response.json()["headers"]["Host"] == f"good.test:{tls_peer.port}"
    assert connects.destinations == ["127.0.0.1"]


def test_certificate_for_another_name_is_refused(tls_peer: HttpPeer, monkeypatch: pytest.MonkeyPatch) -> None:
    # Same address, same trusted CA: only the hostname check can refuse this.
    assert tls_peer.tls is not None
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tls_peer.tls.ca_path))
    with pytest.raises(PermanentError, match="TLS failure"):
        http_request("GET", tls_peer.url("/status/200", host="other.test"), timeout=FAST)
    assert tls_peer.received == []


def test_untrusted_certificate_is_refused(tls_peer: HttpPeer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    with pytest.raises(PermanentError, match="TLS failure"):
        http_request("GET", tls_peer.url("/status/200", host="good.test"), timeout=FAST)
    assert tls_peer.received == []


def test_allowed_host_keeps_certificate_checks(tls_peer: HttpPeer, settings: Any,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    assert tls_peer.tls is not None
    settings.SYNTHORG_CONFIG_OVERRIDES = {"egress": {"block_loopback": True, "allowed_hosts": ["good.test"]}}
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tls_peer.tls.ca_path))
    assert http_request("GET", tls_peer.url("/status/200", host="good.test"), timeout=FAST).status_code == 200
    with pytest.raises(PermanentError, match="block_loopback"):
        http_request("GET", tls_peer.url("/status/200", host="other.test"), timeout=FAST)
