"""The egress policy: which addresses are refused for which host, under each `integrations.egress` key."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from synthorg.egress import (
    EgressRefused,
    PermanentError,
    TransientError,
    check_address,
    connect_checked,
    resolve_checked,
)
from synthorg.http import http_request
from tests.peers.http_peer import ConnectRecorder, FakeDns, HttpPeer

FAST = (2.0, 2.0)


@pytest.fixture
def egress(settings: Any) -> Any:
    def apply(**keys: Any) -> None:
        settings.SYNTHORG_CONFIG_OVERRIDES = {"egress": keys}

    return apply


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


# --- defaults ---------------------------------------------------------------------------

@pytest.mark.parametrize("ip", ["169.254.169.254", "169.254.170.2", "fd00:ec2::254", "::ffff:169.254.169.254"])
def test_metadata_addresses_refused_by_default(ip: str) -> None:
    with pytest.raises(EgressRefused) as caught:
        check_address("metadata.test", ip)
    assert isinstance(caught.value, PermanentError)
    assert "metadata.test" in str(caught.value)
    assert "blocked_networks" in str(caught.value)


@pytest.mark.parametrize("ip", ["127.0.0.1", "::1", "10.1.2.3", "192.168.0.10", "172.16.5.5", "fc00::1", "8.8.8.8"])
def test_private_and_loopback_allowed_by_default(ip: str) -> None:
    check_address("internal.test", ip)


def test_name_resolving_to_metadata_refused_before_connect(dns: FakeDns, connects: ConnectRecorder) -> None:
    dns.answer("metadata.test", ["169.254.169.254"])
    with pytest.raises(EgressRefused, match=r"metadata\.test \(169\.254\.169\.254\)"):
        http_request("GET", "http://metadata.test/latest/meta-data/", timeout=FAST)
    assert connects.destinations == []


@pytest.mark.parametrize("url", [
    "http://169.254.169.254/latest/meta-data/",
    "http://[fd00:ec2::254]/latest/meta-data/",
    "http://[::ffff:169.254.169.254]/",
    "http://2852039166/",  # 169.254.169.254 written as one decimal number
])
def test_metadata_ip_literal_refused_before_connect(url: str, connects: ConnectRecorder) -> None:
    with pytest.raises(EgressRefused):
        http_request("GET", url, timeout=FAST)
    assert connects.destinations == []


def test_any_refused_address_refuses_the_whole_answer(dns: FakeDns, connects: ConnectRecorder) -> None:
    dns.answer("mixed.test", ["127.0.0.1", "169.254.169.254"])
    with pytest.raises(EgressRefused):
        resolve_checked("mixed.test", 80)
    with pytest.raises(EgressRefused):
        http_request("GET", "http://mixed.test/", timeout=FAST)
    assert connects.destinations == []


# --- block_loopback ------------------------------------------------------------------------

@pytest.mark.parametrize("ip", ["127.0.0.1", "127.8.9.10", "::1", "0.0.0.0", "::", "::ffff:127.0.0.1"])  # noqa: S104
def test_loopback_refused_when_block_loopback(egress: Any, ip: str) -> None:
    egress(block_loopback=True)
    with pytest.raises(EgressRefused, match="block_loopback"):
        check_address("localhost", ip)


def test_block_loopback_refuses_request_to_peer(egress: Any, peer: HttpPeer, connects: ConnectRecorder) -> None:
    egress(block_loopback=True)
    with pytest.raises(EgressRefused):
        http_request("GET", peer.url("/status/200"), timeout=FAST)
    assert peer.received == []
    assert connects.destinations == []


@pytest.mark.parametrize("allowed", ["127.0.0.1", "LocalHost."])
def test_allowed_host_passes_block_loopback(egress: Any, peer: HttpPeer, dns: FakeDns, allowed: str) -> None:
    egress(block_loopback=True, allowed_hosts=[allowed])
    dns.answer("localhost", ["127.0.0.1"])
    host = "127.0.0.1" if allowed == "127.0.0.1" else "localhost"
    assert http_request("GET", peer.url("/status/200", host=host), timeout=FAST).status_code == 200
    assert len(peer.received) == 1


def test_allowed_hosts_is_per_name_not_per_address(egress: Any, dns: FakeDns, connects: ConnectRecorder) -> None:
    egress(block_loopback=True, allowed_hosts=["trusted.test"])
    dns.answer("other.test", ["127.0.0.1"])
    with pytest.raises(EgressRefused):
        http_request("GET", "http://other.test/", timeout=FAST)
    assert connects.destinations == []


def test_block_loopback_leaves_private_allowed(egress: Any) -> None:
    egress(block_loopback=True)
    check_address("internal.test", "10.0.0.5")


# --- block_private --------------------------------------------------------------------------

@pytest.mark.parametrize("ip", ["10.0.0.1", "172.16.0.1", "192.168.1.1", "100.64.0.1", "fc00::1", "fe80::1"])
def test_private_refused_when_block_private(egress: Any, ip: str) -> None:
    egress(block_private=True)
    with pytest.raises(EgressRefused, match="block_private"):
        check_address("internal.test", ip)


@pytest.mark.parametrize("ip", ["8.8.8.8", "2606:4700:4700::1111", "127.0.0.1"])
def test_block_private_leaves_public_and_loopback_allowed(egress: Any, ip: str) -> None:
    egress(block_private=True)
    check_address("public.test", ip)


def test_allowed_host_passes_block_private(egress: Any) -> None:
    egress(block_private=True, allowed_hosts=["db.internal"])
    check_address("db.internal", "10.0.0.7")


# --- blocked_networks and allowed_hosts -----------------------------------------------------

def test_blocked_networks_replaces_default_list(egress: Any) -> None:
    egress(blocked_networks=["203.0.113.0/24"])
    with pytest.raises(EgressRefused, match=r"203\.0\.113\.0/24"):
        check_address("doc.test", "203.0.113.9")
    check_address("metadata.test", "169.254.169.254")


def test_allowed_host_passes_blocked_network(egress: Any) -> None:
    egress(allowed_hosts=["metadata.internal"])
    check_address("metadata.internal", "169.254.169.254")
    with pytest.raises(EgressRefused):
        check_address("other.internal", "169.254.169.254")


def test_refusal_message_names_rule_and_remedy_only(egress: Any) -> None:
    with pytest.raises(EgressRefused) as caught:
        check_address("Meta.Test.", "169.254.169.254")
    assert str(caught.value) == (
        "Connection to meta.test (169.254.169.254) refused: address in "
        "integrations.egress.blocked_networks (169.254.0.0/16). "
        "Add the host to integrations.egress.allowed_hosts to allow it."
    )
    assert caught.value.code == "egress_refused"


# --- resolve_checked (SMTP and database checks) ---------------------------------------------

def test_resolve_checked_returns_every_checked_address(dns: FakeDns) -> None:
    dns.answer("db.test", ["10.0.0.1", "10.0.0.2", "10.0.0.1", "fd12::1"])
    assert resolve_checked("db.test", 5432) == ["10.0.0.1", "10.0.0.2", "fd12::1"]
    assert dns.lookups == ["db.test"]


def test_resolve_checked_refuses_metadata(dns: FakeDns) -> None:
    dns.answer("smtp.test", ["169.254.169.254"])
    with pytest.raises(EgressRefused):
        resolve_checked("smtp.test", 25)


def test_resolve_checked_unknown_name_is_transient(dns: FakeDns) -> None:
    dns.answer("gone.test", None)
    with pytest.raises(TransientError, match=r"Cannot resolve gone\.test"):
        resolve_checked("gone.test", 25)


def test_resolve_checked_applies_block_private(egress: Any, dns: FakeDns) -> None:
    egress(block_private=True)
    dns.answer("db.test", ["10.0.0.1"])
    with pytest.raises(EgressRefused):
        resolve_checked("db.test", 5432)


# --- connect_checked (SMTP and database checks that open their own socket) -----------------

def test_connect_checked_connects_to_checked_address(peer: HttpPeer, dns: FakeDns, connects: ConnectRecorder) -> None:
    dns.answer("smtp.test", ["127.0.0.1"], ["169.254.169.254"])
    with connect_checked("smtp.test", peer.port, timeout=2.0) as sock:
        assert sock.getpeername()[0] == "127.0.0.1"
    with pytest.raises(EgressRefused):
        connect_checked("smtp.test", peer.port, timeout=2.0)
    assert connects.destinations == ["127.0.0.1"]


def test_connect_checked_tries_next_address_when_first_fails(peer: HttpPeer, dns: FakeDns,
                                                            connects: ConnectRecorder) -> None:
    with HttpPeer() as stopped:
        closed_port = stopped.port
    dns.answer("two.test", ["::1", "127.0.0.1"])
    # ::1 on the peer's port has no listener (the peer binds 127.0.0.1 only).
    with connect_checked("two.test", peer.port, timeout=2.0) as sock:
        assert sock.getpeername()[0] == "127.0.0.1"
    assert connects.destinations[-1] == "127.0.0.1"  # ::1 first, unless this host has no IPv6 at all
    with pytest.raises(OSError):
        connect_checked("127.0.0.1", closed_port, timeout=2.0)
