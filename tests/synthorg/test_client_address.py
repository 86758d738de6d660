"""The client's address: X-Forwarded-For believed only from integrations.trusted_proxies."""
from __future__ import annotations

from typing import Any

import pytest

from synthorg.client_address import (
    _networks,
    client_address,
    normalise_host,
    parse_address,
    request_hosts,
)
from synthorg.config import ConfigInvalid, load

PROXIES = _networks(("10.0.0.0/8", "fd00::/8"))


def meta(remote: str | None, forwarded: str | None = None, **extra: str) -> dict[str, Any]:
    data: dict[str, Any] = {}
    if remote is not None:
        data["REMOTE_ADDR"] = remote
    if forwarded is not None:
        data["HTTP_X_FORWARDED_FOR"] = forwarded
    data.update(extra)
    return data


@pytest.mark.parametrize(("remote", "forwarded", "expected"), [
    # No trusted proxy in the path: the peer, whatever the header says.
    ("203.0.113.9", "1.2.3.4", "203.0.113.9"),
    # Behind the proxy: the right-most address the proxy saw.
    ("10.0.0.2", "198.51.100.7", "198.51.100.7"),
    # A forged entry on the left is never reached.
    ("10.0.0.2", "6.6.6.6, 198.51.100.7", "198.51.100.7"),
    ("10.0.0.2", "6.6.6.6,7.7.7.7,  198.51.100.7", "198.51.100.7"),
    # Two trusted hops, then the client.
    ("10.0.0.2", "6.6.6.6, 198.51.100.7, 10.1.1.1", "198.51.100.7"),
    # IPv6 client, with and without brackets and ports; IPv4-mapped becomes IPv4.
    ("10.0.0.2", "2001:db8::1", "2001:db8::1"),
    ("10.0.0.2", "[2001:DB8::1]:4711", "2001:db8::1"),
    ("10.0.0.2", "198.51.100.7:51234", "198.51.100.7"),
    ("10.0.0.2", "::ffff:198.51.100.7", "198.51.100.7"),
    ("fd00::5", "198.51.100.7", "198.51.100.7"),
    # Garbage at the right: stop at the last hop walked (the proxy), never a client value beyond.
    ("10.0.0.2", "198.51.100.7, not-an-ip", "10.0.0.2"),
    ("10.0.0.2", "6.6.6.6, garbage, 10.1.1.1", "10.1.1.1"),
    ("10.0.0.2", "", "10.0.0.2"),
    ("10.0.0.2", None, "10.0.0.2"),
    ("10.0.0.2", "x" * 5000, "10.0.0.2"),
    # A chain trusted all the way: the farthest hop.
    ("10.0.0.2", "10.9.9.9, 10.1.1.1", "10.9.9.9"),
])
def test_client_is_the_rightmost_untrusted_address(remote: str, forwarded: str | None, expected: str) -> None:
    assert client_address(meta(remote, forwarded), PROXIES) == expected


def test_forged_headers_never_give_a_fresh_address() -> None:
    seen = {client_address(meta("10.0.0.2", f"{i}.{i}.{i}.{i}, 198.51.100.7"), PROXIES) for i in range(1, 50)}
    assert seen == {"198.51.100.7"}
    direct = {client_address(meta("203.0.113.9", f"{i}.0.0.1"), PROXIES) for i in range(1, 50)}
    assert direct == {"203.0.113.9"}


def test_without_trusted_proxies_remote_addr_is_taken_as_is() -> None:
    assert client_address(meta("10.0.0.2", "198.51.100.7"), ()) == "10.0.0.2"
    assert client_address(meta(None, "198.51.100.7"), ()) is None
    assert client_address(meta("", "198.51.100.7"), PROXIES) is None


def test_default_configuration_trusts_no_proxy(settings: Any) -> None:
    settings.SYNTHORG_CONFIG_OVERRIDES = {}
    assert client_address(meta("127.0.0.1", "198.51.100.7")) == "127.0.0.1"
    settings.SYNTHORG_CONFIG_OVERRIDES = {"trusted_proxies": ["127.0.0.1/32"]}
    assert client_address(meta("127.0.0.1", "6.6.6.6, 198.51.100.7")) == "198.51.100.7"


@pytest.mark.parametrize("text", ["", " ", "1.2.3", "1.2.3.4.5", "::g", "[::1", "unknown", "_hidden", "1.2.3.4:x:y", "[::1]x", "[::1]:"])
def test_unparsable_addresses_are_none(text: str) -> None:
    assert parse_address(text) is None


def test_trusted_proxies_are_validated_with_the_key_path() -> None:
    with pytest.raises(ConfigInvalid) as caught:
        load(None, environ={}, overrides={"trusted_proxies": ["10.0.0.0/8", "10.0.0.0/33", "nonsense"]})
    paths = [problem.path for problem in caught.value.problems]
    assert paths == ["integrations.trusted_proxies[1]", "integrations.trusted_proxies[2]"]
    with pytest.raises(ConfigInvalid) as caught:
        load(None, environ={}, overrides={"trusted_proxies": "10.0.0.0/8"})
    assert caught.value.problems[0].path == "integrations.trusted_proxies"
    assert load(None, environ={}).integrations.trusted_proxies == []


@pytest.mark.parametrize(("raw", "expected"), [
    ("abc.NGROK-free.app", "abc.ngrok-free.app"), ("abc.ngrok-free.app.", "abc.ngrok-free.app"),
    ("abc.ngrok-free.app.:443", "abc.ngrok-free.app"), ("abc.ngrok-free.app..", "abc.ngrok-free.app"),
    ("[::1]:8000", "::1"), ("127.0.0.1:8000", "127.0.0.1"), ("bad host", ""), ("a@b", ""), ("", ""),
])
def test_hosts_are_normalised(raw: str, expected: str) -> None:
    assert normalise_host(raw) == expected


def test_forwarded_host_counts_only_from_a_trusted_proxy(settings: Any) -> None:
    request = meta("127.0.0.1", HTTP_HOST="abc.ngrok-free.app", HTTP_X_FORWARDED_HOST="127.0.0.1")
    assert request_hosts(request) == ["abc.ngrok-free.app"]
    settings.SYNTHORG_CONFIG_OVERRIDES = {"trusted_proxies": ["127.0.0.1/32"]}
    assert request_hosts(request) == ["abc.ngrok-free.app", "127.0.0.1"]


# --- the callers: the receiver's flood guard and the audit log ------------------------------

@pytest.mark.django_db
def test_forged_forwarded_for_gives_a_flooder_no_fresh_bucket(settings: Any) -> None:
    from django.test import Client

    from tests.webhooks.receiving import post
    from webhooks.models import ReceiptSample

    settings.SYNTHORG_CONFIG_OVERRIDES = {"trusted_proxies": ["10.0.0.0/8"], "webhooks": {"flood_rpm_per_ip": 2}}
    proxy = Client(REMOTE_ADDR="10.0.0.2")
    codes = [post(proxy, "nobody", "auto", b"{}", {}, HTTP_X_FORWARDED_FOR=f"{i}.{i}.{i}.{i}, 198.51.100.7"
                  ).status_code for i in range(1, 5)]
    assert codes == [401, 401, 429, 429]
    # Another sender behind the same proxy has its own budget (not the proxy's).
    assert post(proxy, "nobody", "auto", b"{}", {}, HTTP_X_FORWARDED_FOR="198.51.100.8").status_code == 401
    assert set(ReceiptSample.objects.values_list("remote_ip", flat=True)) == {"198.51.100.7", "198.51.100.8"}


@pytest.mark.django_db
def test_audit_ip_is_the_client_address(settings: Any) -> None:
    from django.test import RequestFactory

    from synthorg.audit import client_ip

    request = RequestFactory().get("/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="6.6.6.6, 198.51.100.7")
    assert client_ip(request) == "10.0.0.2"
    settings.SYNTHORG_CONFIG_OVERRIDES = {"trusted_proxies": ["10.0.0.0/8"]}
    assert client_ip(request) == "198.51.100.7"
