"""Which URLs the service accepts as a destination, decided by the parser that connects.

Issue 12: ``https://localhost\\.github.com`` passed a check that read the host with
``urllib.parse.urlsplit`` (host ``localhost\\.github.com``, a github.com name) while
requests, which parses with urllib3's ``parse_url``, connected to ``localhost`` and sent
the token there. Two parsers that disagree about a URL make every host check on it
worthless, so this module reads each URL with **both** and refuses it unless they agree
on scheme, host, port and path. On top of that it refuses what has no business in a
destination URL: backslashes, userinfo (``user@host``), whitespace, control characters
(NUL included), non-ASCII characters (write an internationalized name in its ``xn--``
form), a fragment, and schemes other than http(s).

One module, used by the connection types' URL validators (a 422 at create/update), by
OAuth's endpoint fields, and by ``synthorg.http`` before every outbound request, so a
URL stored before these rules existed is still refused at connect time.
"""
from __future__ import annotations

import ipaddress
from collections.abc import Collection
from dataclasses import dataclass
from urllib.parse import urlsplit

from urllib3.exceptions import LocationParseError
from urllib3.util import parse_url

from synthorg.egress import normalize_host

__all__ = [
    "LOOPBACK_NAMES",
    "Destination",
    "UnsafeURL",
    "check_https_url",
    "check_url",
    "host_allowed",
    "is_loopback_host",
]

# Names that resolve to this machine without asking DNS (RFC 6761 §6.3).
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain"})
DEFAULT_PORTS = {"http": 80, "https": 443}


class UnsafeURL(ValueError):
    """The URL breaks a rule; the message names the rule in words and never repeats the URL.

    A ``ValueError`` so the type validators' contract (``ValueError`` → a 422 naming the
    field) holds without a translation layer.
    """


@dataclass(frozen=True)
class Destination:
    """Where a URL goes, as urllib3 (and therefore requests) will connect."""

    scheme: str
    host: str  # lower case, no IPv6 brackets, no trailing dot
    port: int  # the effective port (443 for https without one)
    path: str

    @property
    def loopback(self) -> bool:
        return is_loopback_host(self.host)


def is_loopback_host(host: str) -> bool:
    """``localhost`` (and ``*.localhost``) or an address in 127.0.0.0/8 or ::1."""
    host = normalize_host(host)
    if host in LOOPBACK_NAMES or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _forbidden_character(url: str) -> str | None:
    for character in url:
        if character == "\\":
            return "must not contain a backslash"
        if character.isspace():
            return "must not contain whitespace"
        if ord(character) < 0x20 or ord(character) == 0x7F:
            return "must not contain control characters"
        if ord(character) > 0x7E:
            return "must contain only ASCII characters (write an internationalized host name as xn--...)"
    return None


def check_url(url: object, *, schemes: Collection[str] = ("http", "https")) -> Destination:
    """The destination of ``url``, or ``UnsafeURL`` naming the first rule it breaks."""
    if not isinstance(url, str) or not url.lower().startswith(("http://", "https://")):
        raise UnsafeURL("must be an absolute http:// or https:// URL")
    problem = _forbidden_character(url)
    if problem:
        raise UnsafeURL(problem)
    try:
        ours = urlsplit(url)
        our_port = ours.port  # a property: raises on a port out of range or not a number
        theirs = parse_url(url)
    except (ValueError, LocationParseError):
        raise UnsafeURL("is not a well-formed URL (host or port cannot be parsed)") from None
    scheme = (ours.scheme or "").lower()
    if scheme not in ("http", "https") or not ours.hostname:
        raise UnsafeURL("must be an absolute http:// or https:// URL")
    if scheme not in schemes:
        raise UnsafeURL(f"must use {' or '.join(s + '://' for s in sorted(schemes))}")
    if ours.username is not None or ours.password is not None or theirs.auth is not None or "@" in ours.netloc:
        raise UnsafeURL("must not carry credentials or user info (user@host); use the secret fields")
    if ours.fragment or "#" in url:
        raise UnsafeURL("must not have a #fragment")
    # Both readings must name the same place; any difference is a parser confusion that
    # one of them (and so one of our checks) would get wrong.
    agree = (
        (theirs.scheme or "").lower() == scheme
        and normalize_host(theirs.host or "") == normalize_host(ours.hostname)
        and theirs.port == our_port
        and (theirs.path or "") == (ours.path or "")
    )
    if not agree:
        raise UnsafeURL("is ambiguous: URL parsers disagree on its host, port or path "
                        "(percent-encoded host, dot segments or similar); write it plainly")
    host = normalize_host(ours.hostname)
    if not host or host.startswith(".") or ".." in host:
        raise UnsafeURL("must name a host")
    return Destination(scheme=scheme, host=host, port=our_port or DEFAULT_PORTS[scheme], path=ours.path or "/")


def check_https_url(url: object, *, allow_loopback_http: bool = True) -> Destination:
    """``check_url`` plus: https, or plain http only to a loopback host (nobody on the network can read it)."""
    destination = check_url(url)
    if destination.scheme != "https" and not (allow_loopback_http and destination.loopback):
        raise UnsafeURL("must use https:// (plain http:// is allowed only for loopback hosts)")
    return destination


def host_allowed(host: str, allowed_hosts: Collection[str]) -> bool:
    """Is ``host`` one of ``allowed_hosts`` (exact names, compared normalised: case, brackets, trailing dot)?"""
    return normalize_host(host) in {normalize_host(h) for h in allowed_hosts}
