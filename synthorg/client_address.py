"""Who is on the other end of a request: the client's address and the host it asked for.

Headers such as ``X-Forwarded-For`` and ``X-Forwarded-Host`` are written by whoever sends
the request, so they are believed only when the request comes from a proxy the operator
listed (``integrations.trusted_proxies``, CIDRs, empty by default). One function answers
"which client is this" for the webhook receiver's flood guard, the audit log's ``ip`` and
the tunnel guard, so they can never disagree (issue 12 §4, issue 13 §3).

The rule for ``X-Forwarded-For`` is the usual one for a chain of proxies that each append
the address they received the request from: walk the list from the right, past every
trusted proxy; the first address that is not one is the client. Anything left of it was
written by the client and is ignored, so a forged ``X-Forwarded-For`` never gives a flooder
a fresh bucket.
"""
from __future__ import annotations

import functools
import ipaddress
from collections.abc import Mapping
from typing import Any

from django.http.request import split_domain_port

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@functools.lru_cache(maxsize=8)
def _networks(cidrs: tuple[str, ...]) -> tuple[Network, ...]:
    # Validated at load (synthorg.E001); parsed once per distinct list, not per request.
    return tuple(ipaddress.ip_network(cidr, strict=False) for cidr in cidrs)


def trusted_networks() -> tuple[Network, ...]:
    from synthorg.config import get_config

    return _networks(tuple(get_config().integrations.trusted_proxies))


def parse_address(text: str) -> IPAddress | None:
    """One address as proxies write it: ``1.2.3.4``, ``1.2.3.4:5678``, ``2001:db8::1``,
    ``[2001:db8::1]:443``; IPv4-mapped IPv6 becomes IPv4. Anything else is None."""
    text = text.strip().strip('"')
    if not text or len(text) > 64:
        return None
    if text.startswith("["):
        inside, bracket, port = text[1:].partition("]")
        if not bracket or (port and not (port[0] == ":" and port[1:].isdigit())):
            return None
        text = inside
    elif text.count(":") == 1:  # IPv4 with a port (IPv6 has two colons or more)
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def is_trusted(address: IPAddress | None, networks: tuple[Network, ...]) -> bool:
    return address is not None and any(address in network for network in networks)


def client_address(meta: Mapping[str, Any], networks: tuple[Network, ...] | None = None) -> str | None:
    """The client's address for a WSGI environ / ``request.META``.

    Without trusted proxies (the default) this is ``REMOTE_ADDR``, untouched. When the peer
    is a trusted proxy: the right-most ``X-Forwarded-For`` entry that is not a trusted proxy.
    A chain that is trusted all the way, or that reaches an entry that is not an address,
    stops at the last address walked (never at a client-written value beyond it).
    """
    remote = meta.get("REMOTE_ADDR") or None
    if networks is None:
        networks = trusted_networks()
    if not networks or remote is None:
        return remote
    peer = parse_address(remote)
    if not is_trusted(peer, networks):
        return remote
    client: IPAddress = peer  # type: ignore[assignment]  # trusted, so parsed
    for entry in reversed(str(meta.get("HTTP_X_FORWARDED_FOR", "")).split(",")):
        hop = parse_address(entry)
        if hop is None:
            break
        client = hop
        if not is_trusted(hop, networks):
            break
    return str(client)


def from_trusted_proxy(meta: Mapping[str, Any], networks: tuple[Network, ...] | None = None) -> bool:
    """Whether the immediate peer is a proxy whose ``X-Forwarded-*`` headers are believed."""
    if networks is None:
        networks = trusted_networks()
    return bool(networks) and is_trusted(parse_address(meta.get("REMOTE_ADDR") or ""), networks)


def normalise_host(raw: str) -> str:
    """A Host header as one comparable name: lower case, no port, no trailing dot, no IPv6
    brackets. A value that is not a valid host gives "" (callers treat it as unknown)."""
    domain, _port = split_domain_port(raw.strip())
    return domain.rstrip(".").strip("[]")


def request_hosts(meta: Mapping[str, Any]) -> list[str]:
    """The names a request was addressed to: its Host, and the forwarded host when a trusted
    proxy sent it (each normalised, "" when malformed)."""
    # As Django's get_host(): without a Host header (HTTP/1.0), the server's own name.
    hosts = [normalise_host(str(meta.get("HTTP_HOST") or meta.get("SERVER_NAME") or ""))]
    forwarded = meta.get("HTTP_X_FORWARDED_HOST")
    if forwarded and from_trusted_proxy(meta):
        # The proxy nearest to us appended last.
        hosts.append(normalise_host(str(forwarded).split(",")[-1]))
    return hosts
