"""Where outbound connections may go, checked on the address actually connected to.

Every outbound connection of the service (HTTP through ``synthorg.http``, and the SMTP and
database health checks directly) resolves its host here once, checks every address against
``integrations.egress`` and connects only to an address it checked. Checking a name and then
letting a library resolve it again would leave a DNS-rebinding window: the second answer can
point at the cloud metadata service.

This module also holds the outbound error tree (``ExternalServiceError`` and its two kinds),
because the SMTP and database checks use it without HTTP; ``synthorg.http`` re-exports it.
"""
from __future__ import annotations

import ipaddress
import logging
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from synthorg.config import get_config
from synthorg.errors import SynthorgError

logger = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class ExternalServiceError(SynthorgError):
    """An outbound call failed. ``status`` is the peer's HTTP status, when it answered.

    The message names the method, ``scheme://host/path`` and the reason; never a query
    string, a header or a body, so it is safe to log, store as ``last_error`` and render.
    """

    status_code = 502
    code = "external_service_error"

    def __init__(self, message: str, status: int | None = None, *, retry_after: float | None = None) -> None:
        self.status = status
        self.retry_after = retry_after
        super().__init__(message)


class TransientError(ExternalServiceError):
    """Worth retrying later: DNS, timeouts, resets, 5xx, 408, 429 (``retry_after`` in seconds if given)."""

    status_code = 503
    code = "external_service_unavailable"


class PermanentError(ExternalServiceError):
    """Retrying will not help until someone changes something: other 4xx, TLS, egress refusal, size."""


class EgressRefused(PermanentError):
    code = "egress_refused"


def normalize_host(host: str) -> str:
    """``Example.COM.`` and ``[::1]`` compare equal to ``example.com`` and ``::1``."""
    return host.strip().strip("[]").rstrip(".").lower()


@dataclass(frozen=True)
class EgressPolicy:
    """The ``integrations.egress`` block, parsed once per check."""

    block_private: bool = False
    block_loopback: bool = False
    blocked_networks: tuple[IPNetwork, ...] = ()
    allowed_hosts: frozenset[str] = frozenset()

    @classmethod
    def from_config(cls) -> EgressPolicy:
        egress = get_config().integrations.egress
        return cls(
            block_private=egress.block_private,
            block_loopback=egress.block_loopback,
            # Validated by the config loader (synthorg.E001), so this cannot raise here.
            blocked_networks=tuple(ipaddress.ip_network(n, strict=False) for n in egress.blocked_networks),
            allowed_hosts=frozenset(normalize_host(h) for h in egress.allowed_hosts),
        )

    def refusal(self, host: str, ip: str | IPAddress) -> str | None:
        """The rule that refuses ``ip`` for ``host``, or None when the connection may go ahead."""
        if normalize_host(host) in self.allowed_hosts:
            return None
        address = ipaddress.ip_address(ip.split("%", 1)[0]) if isinstance(ip, str) else ip
        # ::ffff:169.254.169.254 reaches the IPv4 address on a dual-stack socket.
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        for network in self.blocked_networks:
            if address.version == network.version and address in network:
                return f"address in integrations.egress.blocked_networks ({network})"
        # 0.0.0.0 and :: connect to this machine on Linux, so they count as loopback.
        local = address.is_loopback or address.is_unspecified
        if self.block_loopback and local:
            return "loopback address (integrations.egress.block_loopback)"
        # Not global covers RFC 1918, ULA, link-local and carrier-grade NAT (100.64.0.0/10).
        if self.block_private and not local and not address.is_global:
            return "private address (integrations.egress.block_private)"
        return None

    def check(self, host: str, ip: str | IPAddress) -> None:
        rule = self.refusal(host, ip)
        if rule is not None:
            logger.warning("Egress to %s (%s) refused: %s", normalize_host(host), ip, rule)
            raise EgressRefused(
                f"Connection to {normalize_host(host)} ({ip}) refused: {rule}. "
                f"Add the host to integrations.egress.allowed_hosts to allow it."
            )


def current_policy() -> EgressPolicy:
    return EgressPolicy.from_config()


def check_address(host: str, ip: str | IPAddress, *, policy: EgressPolicy | None = None) -> None:
    """Raise ``EgressRefused`` (naming the host and the rule) when ``ip`` may not be reached for ``host``."""
    (policy or current_policy()).check(host, ip)


AddrInfo = tuple[socket.AddressFamily, socket.SocketKind, int, str, Any]


def _resolve(host: str, port: int, policy: EgressPolicy) -> list[AddrInfo]:
    """One resolution; every address is checked, and one refused address refuses them all.

    Refusing the whole answer (rather than skipping the bad entries) is deliberate: a name
    that mixes a public and a metadata address is an attack, not a misconfiguration.
    Raises ``socket.gaierror`` when the name does not resolve.
    """
    name = normalize_host(host)
    infos = socket.getaddrinfo(name, port, socket.AF_UNSPEC, socket.SOCK_STREAM)
    for info in infos:
        policy.check(name, info[4][0])
    return infos


def resolve_checked(host: str, port: int, *, policy: EgressPolicy | None = None) -> list[str]:
    """Resolve once and check every address; connect to one of the returned addresses, never the name.

    For callers that open their own sockets (SMTP, database drivers: psycopg ``hostaddr``,
    PyMySQL ``host``). Raises ``EgressRefused``, or ``TransientError`` when the name does not
    resolve.
    """
    try:
        infos = _resolve(host, port, policy or current_policy())
    except socket.gaierror as exc:
        raise TransientError(f"Cannot resolve {normalize_host(host)} ({exc.strerror or 'DNS failure'}).") from None
    addresses: list[str] = []
    for info in infos:
        if info[4][0] not in addresses:
            addresses.append(info[4][0])
    return addresses


def connect_checked(host: str, port: int, *, timeout: float | None,
                    source_address: tuple[str, int] | None = None,
                    socket_options: Sequence[tuple[int, int, int | bytes]] | None = None,
                    policy: EgressPolicy | None = None) -> socket.socket:
    """``socket.create_connection`` that connects only to addresses it resolved and checked itself.

    Raises ``EgressRefused`` before any packet is sent to a refused address; otherwise the
    ``OSError`` family as ``create_connection`` does (``socket.gaierror``, ``TimeoutError``),
    so a caller such as urllib3 can map them as usual. ``timeout`` must not be None for
    outbound calls; it is typed optional only because urllib3 passes its own value through.
    """
    infos = _resolve(host, port, policy or current_policy())
    last_error: OSError | None = None
    for family, kind, proto, _canonical, sockaddr in infos:
        sock: socket.socket | None = None
        try:
            # Inside the try: a host without IPv6 fails here and the next address is tried.
            sock = socket.socket(family, kind, proto)
            for option in socket_options or ():
                sock.setsockopt(*option)
            sock.settimeout(timeout)
            if source_address:
                sock.bind(source_address)
            sock.connect(sockaddr)
        except OSError as exc:
            if sock is not None:
                sock.close()
            last_error = exc
            continue
        return sock
    if last_error is not None:
        raise last_error
    raise OSError(f"getaddrinfo returned no address for {normalize_host(host)}")
