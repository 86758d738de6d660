"""Pytest fixtures for the real peers; other test folders import them the same way:

    from tests.peers.fixtures import *  # noqa

* `oidc_peer` (session): one oidc-provider server for the whole run, with the default
  clients of `PeerConfig` (every grant; client_secret_basic and client_secret_post).
* `oidc` (function): the same server with its token-request counters reset for this test.
* `device_stub` (function): a fresh scripted device-flow server, stopped afterwards.
* `oauthlib_loopback_http`: lets oauthlib talk plain HTTP to the loopback peers.

A missing node or node_modules fails the fixture (never skips): run `make npm`.
"""
from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.peers.device_stub import DeviceStub
from tests.peers.oidc_peer import OIDCPeer, PeerError, PeerUnavailable

__all__ = ["device_stub", "oauthlib_loopback_http", "oidc", "oidc_peer"]


@pytest.fixture(scope="session")
def oidc_peer() -> Iterator[OIDCPeer]:
    peer = OIDCPeer()
    try:
        peer.start()
    except (PeerUnavailable, PeerError) as exc:
        pytest.fail(f"the OIDC test peer could not start: {exc}", pytrace=False)
    try:
        yield peer
    finally:
        peer.stop()


@pytest.fixture
def oidc(oidc_peer: OIDCPeer) -> OIDCPeer:
    if not oidc_peer.running:
        pytest.fail("the OIDC test peer has died; see earlier errors", pytrace=False)
    oidc_peer.reset_counters()
    return oidc_peer


@pytest.fixture
def device_stub() -> Iterator[DeviceStub]:
    stub = DeviceStub().start()
    try:
        yield stub
    finally:
        stub.stop()


@pytest.fixture
def oauthlib_loopback_http(monkeypatch: pytest.MonkeyPatch) -> None:
    # oauthlib refuses http:// endpoints unless told otherwise; the peers are plain HTTP on loopback.
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
