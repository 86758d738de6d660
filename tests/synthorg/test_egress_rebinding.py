"""DNS rebinding: the address checked is the address connected to, resolved once per connection.

The fake resolver changes its answer on every lookup. A guard that checked a name and then
let urllib3 resolve it again would connect to the second answer; ``ConnectRecorder`` turns
any non-loopback connect into a test failure, so no real refused address is ever reached.
"""
from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from synthorg.egress import EgressRefused, resolve_checked
from synthorg.http import egress_session, http_request
from tests.peers.http_peer import ConnectRecorder, FakeDns, HttpPeer

FAST = (2.0, 2.0)
METADATA = "169.254.169.254"


@pytest.fixture
def connects(monkeypatch: pytest.MonkeyPatch) -> ConnectRecorder:
    return ConnectRecorder().install(monkeypatch)


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> FakeDns:
    return FakeDns().install(monkeypatch)


@pytest.fixture
def peer(connects: ConnectRecorder) -> Iterator[HttpPeer]:
    with HttpPeer() as running:
        yield running


def test_check_then_rebind_to_metadata_is_refused_before_any_byte(peer: HttpPeer, dns: FakeDns,
                                                                  connects: ConnectRecorder) -> None:
    # Validation time (e.g. saving the connection) sees loopback; connect time sees metadata.
    dns.answer("rebind.test", ["127.0.0.1"], [METADATA])
    assert resolve_checked("rebind.test", peer.port) == ["127.0.0.1"]
    with pytest.raises(EgressRefused, match=re.escape(METADATA)):
        http_request("GET", peer.url("/status/200", host="rebind.test"), timeout=FAST)
    assert connects.destinations == []
    assert peer.received == []


def test_refused_first_answer_is_refused_even_if_next_is_safe(peer: HttpPeer, dns: FakeDns,
                                                              connects: ConnectRecorder) -> None:
    dns.answer("rebind.test", [METADATA], ["127.0.0.1"])
    with pytest.raises(EgressRefused):
        http_request("GET", peer.url("/status/200", host="rebind.test"), timeout=FAST)
    assert connects.destinations == []
    assert peer.received == []
    assert dns.lookups == ["rebind.test"]


def test_connect_uses_the_answer_that_was_checked(peer: HttpPeer, dns: FakeDns, connects: ConnectRecorder) -> None:
    # Safe first, metadata afterwards: a second resolution by anyone would reach metadata.
    dns.answer("rebind.test", ["127.0.0.1"], [METADATA])
    response = http_request("GET", peer.url("/echo", host="rebind.test"), timeout=FAST)
    assert response.json()["headers"]["Host"] == f"rebind.test:{peer.port}"
    assert dns.lookups == ["rebind.test"]
    assert connects.destinations == ["127.0.0.1"]


def test_each_new_connection_is_checked_again(peer: HttpPeer, dns: FakeDns, connects: ConnectRecorder) -> None:
    dns.answer("rebind.test", ["127.0.0.1"], [METADATA])
    assert http_request("GET", peer.url("/status/200", host="rebind.test"), timeout=FAST).status_code == 200
    with pytest.raises(EgressRefused):
        http_request("GET", peer.url("/status/200", host="rebind.test"), timeout=FAST)
    assert len(peer.received) == 1
    assert connects.destinations == ["127.0.0.1"]


def test_retry_resolves_and_checks_again(peer: HttpPeer, dns: FakeDns, connects: ConnectRecorder,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import synthorg.http as http_module

    monkeypatch.setattr(http_module, "_sleep", lambda seconds: None)
    dns.answer("rebind.test", ["127.0.0.1"], [METADATA])
    with pytest.raises(EgressRefused):
        http_request("GET", peer.url("/status/503", host="rebind.test"), timeout=FAST, retry=1)
    assert len(peer.received) == 1
    assert dns.lookups == ["rebind.test", "rebind.test"]


def test_session_is_guarded_at_connect_time(peer: HttpPeer, dns: FakeDns, connects: ConnectRecorder) -> None:
    dns.answer("rebind.test", ["127.0.0.1"], [METADATA])
    with egress_session(FAST) as session:
        assert session.get(peer.url("/status/200", host="rebind.test")).status_code == 200
        # A fresh connection (the peer closes after each answer) resolves again.
        with pytest.raises(EgressRefused):
            session.get(peer.url("/status/200", host="rebind.test"))
    assert connects.destinations == ["127.0.0.1"]


def test_plain_requests_session_would_have_connected(peer: HttpPeer, dns: FakeDns) -> None:
    """Control: without the guard, the rebinding answer is what the socket connects to.

    This shows the fixture really simulates the attack: the unguarded session asks the
    resolver and tries the metadata address, which ConnectRecorder stops.
    """
    dns.answer("rebind.test", [METADATA])
    session = requests.Session()
    session.trust_env = False
    with pytest.raises(AssertionError, match=re.escape(f"tried to connect to {METADATA}")):
        session.get(peer.url("/status/200", host="rebind.test"), timeout=FAST)


def test_loopback_rebinding_refused_when_block_loopback(settings: Any, peer: HttpPeer, dns: FakeDns,
                                                        connects: ConnectRecorder) -> None:
    settings.SYNTHORG_CONFIG_OVERRIDES = {"egress": {"block_loopback": True}}
    dns.answer("public.test", ["8.8.8.8"], ["127.0.0.1"])
    resolve_checked("public.test", peer.port)  # the name looked public when it was saved
    with pytest.raises(EgressRefused, match="block_loopback"):
        http_request("GET", peer.url("/status/200", host="public.test"), timeout=FAST)
    assert connects.destinations == []
    assert peer.received == []
