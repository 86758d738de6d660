"""The one outbound HTTP wrapper: timeouts, the egress guard, quick retries, error mapping.

After healthchecks' ``hc/lib/curl.py``. Probes, webhook forwards and token endpoints call
``http_request``; requests-oauthlib's ``OAuth2Session`` goes through ``guard_session()``
(``egress_session()`` for a plain session). All of them connect only through
``_GuardedAdapter``, so ``integrations.egress`` applies to every connection they open.

Before any of that, every URL is read by ``synthorg.url_policy`` with both urllib's and
urllib3's parsers and refused when they disagree or it carries a backslash, user info,
whitespace or control characters (issue 12: ``https://localhost\\.github.com`` looked like a
github.com host to one parser and connected to localhost through the other). A caller that
may only reach certain hosts (the GitHub token: api.github.com or the operator's GitHub
Enterprise host) passes ``allowed_hosts``; the adapter checks it on the host of the
connection pool urllib3 is about to use, not on the string the caller stored.

Why resolve-check-connect rather than checking the peer after connecting: the connection
classes below resolve the host once (``synthorg.egress.connect_checked``), check every
address, and open the socket to a checked address. The name is never resolved a second
time, so a DNS answer that changes between a check and the connect (rebinding) cannot
slip through, and a refused address does not even receive a SYN. urllib3 still uses the
hostname for SNI, the Host header and certificate verification: only the socket's
destination comes from us.
"""
from __future__ import annotations

import email.utils
import logging
import math
import os
import random
import re
import socket
import sys
import time
from collections.abc import Callable, Collection, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError

from synthorg import egress, url_policy
from synthorg.egress import EgressRefused, ExternalServiceError, PermanentError, TransientError

__all__ = [
    "DEFAULT_MAX_BYTES",
    "EgressRefused",
    "ExternalServiceError",
    "PermanentError",
    "TransientError",
    "URLRefused",
    "egress_session",
    "guard_session",
    "http_request",
    "parse_retry_after",
    "safe_url",
]

logger = logging.getLogger(__name__)
SessionT = TypeVar("SessionT", bound=requests.Session)

USER_AGENT = "synthorg-integrations/0.1"
# Probe and token responses are small; a larger body is a misconfigured URL or an attack.
DEFAULT_MAX_BYTES = 2 * 1024 * 1024
# RFC 9110 §9.2.2: only these may be repeated without the peer seeing a second effect.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
# A Retry-After longer than this is not waited for inline: the error carries it to the
# task layer, which retries slowly (STYLE.md §4: retries happen at one layer only).
MAX_INLINE_WAIT_SECONDS = 5.0
# Pause before the second try when the peer gave no Retry-After.
RETRY_PAUSE_SECONDS = (0.2, 0.5)
_sleep = time.sleep  # tests replace this to observe the waits


class URLRefused(PermanentError):
    """The URL breaks ``synthorg.url_policy`` or names a host this call may not reach; nothing was sent."""

    code = "url_refused"


# --- messages and logs that never carry a secret ---------------------------------------

def safe_url(url: str, *, hide_path: bool = False) -> str:
    """``scheme://host[:port]/path``: no user:password@, no query string, no fragment."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "<invalid URL>"
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{port}" if port else host
    path = "/…" if hide_path and parts.path not in ("", "/") else (parts.path or "/")
    # A refused URL may hold control characters (an escape sequence, NUL): escaped, so a
    # message or log line shows them instead of acting on the terminal or the log parser.
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in f"{parts.scheme}://{netloc}{path}")


_QUERY = re.compile(r"\?[^\s'\"]*")


class _StripQueryStrings(logging.Filter):
    """urllib3 logs request targets with their query string at DEBUG (connectionpool, retry).

    A token in a query string must not reach the logs even when an operator turns DEBUG on.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "?" in message:
            record.msg = _QUERY.sub("", message)
            record.args = None
        return True


_strip_filter = _StripQueryStrings()
for _name in ("urllib3.connectionpool", "urllib3.util.retry", "urllib3.connection", "urllib3.poolmanager"):
    logging.getLogger(_name).addFilter(_strip_filter)


# --- the guarded connection classes -----------------------------------------------------

def _guarded_new_conn(conn: HTTPConnection) -> socket.socket:
    """``HTTPConnection._new_conn`` with ``egress.connect_checked`` in place of ``create_connection``.

    Exceptions are urllib3's own, so requests maps them as it always does; ``EgressRefused``
    is none of those and travels up to the caller unchanged, before any byte was sent.
    """
    # urllib3 sets the connect timeout on the connection before connecting (the adapter
    # always supplies one); its "not set" sentinel means the socket default, as in urllib3.
    timeout = conn.timeout if isinstance(conn.timeout, (int, float)) else socket.getdefaulttimeout()
    try:
        sock = egress.connect_checked(
            conn._dns_host,  # the host without IPv6 brackets, as urllib3 resolves it
            conn.port,
            timeout=timeout,
            source_address=conn.source_address,
            socket_options=conn.socket_options,
        )
    except socket.gaierror as exc:
        raise NameResolutionError(conn.host, conn, exc) from exc
    except TimeoutError as exc:
        raise ConnectTimeoutError(conn, f"Connection to {conn.host} timed out.") from exc
    except OSError as exc:
        raise NewConnectionError(conn, f"Failed to establish a new connection: {exc}") from exc
    sys.audit("http.client.connect", conn, conn.host, conn.port)
    return sock


class _GuardedHTTPConnection(HTTPConnection):
    def _new_conn(self) -> socket.socket:
        return _guarded_new_conn(self)


class _GuardedHTTPSConnection(HTTPSConnection):
    # connect() wraps the socket with server_hostname=self.host and verifies the
    # certificate against it; only the TCP destination is ours.
    def _new_conn(self) -> socket.socket:
        return _guarded_new_conn(self)


class _GuardedHTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = _GuardedHTTPConnection


class _GuardedHTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = _GuardedHTTPSConnection


def check_destination(method: str, url: str, *, allowed_hosts: Collection[str] | None = None,
                      hide_path: bool = False, require_tls: bool = False) -> url_policy.Destination:
    """``url_policy.check_url`` plus the caller's host allowlist; ``URLRefused`` names the rule, not the URL's query.

    ``require_tls`` (callers that send a secret): https, plain http only to a loopback host.
    """
    where = safe_url(url, hide_path=hide_path)
    try:
        destination = url_policy.check_https_url(url) if require_tls else url_policy.check_url(url)
    except url_policy.UnsafeURL as exc:
        logger.warning("Outbound %s %s refused: the URL %s", method, where, exc)
        raise URLRefused(f"{method} {where}: refused, the URL {exc}") from None
    _check_allowed_host(method, where, destination.host, allowed_hosts)
    return destination


def _check_allowed_host(method: str, where: str, host: str, allowed_hosts: Collection[str] | None) -> None:
    if allowed_hosts is not None and not url_policy.host_allowed(host, allowed_hosts):
        logger.warning("Outbound %s %s refused: %s is not an allowed host for this call", method, where,
                       egress.normalize_host(host))
        raise URLRefused(f"{method} {where}: refused, {egress.normalize_host(host)} is not a host this "
                         "call may send to")


class _GuardedAdapter(HTTPAdapter):
    """Connects only through the guarded connection classes; fills in a timeout; maps errors.

    Mapping here (not only in ``http_request``) means requests-oauthlib's callers see the
    same ``TransientError``/``PermanentError`` with the same query-free messages.
    """

    def __init__(self, timeout: tuple[float, float], *, hide_path: bool,
                 allowed_hosts: Collection[str] | None = None, require_tls: bool = False) -> None:
        self.default_timeout = timeout
        self.require_tls = require_tls
        self.hide_path = hide_path
        self.allowed_hosts = None if allowed_hosts is None else frozenset(allowed_hosts)
        super().__init__(max_retries=0)  # retries happen in http_request or the task, never here

    def get_connection_with_tls_context(self, request: requests.PreparedRequest, verify: bool | str | None,
                                        proxies: Mapping[str, str] | None = None, cert: Any = None) -> Any:
        # The pool's host is the one every connection of this request connects to (requests
        # builds it from the prepared URL): the allowlist is judged there, after every parse.
        pool = super().get_connection_with_tls_context(request, verify, proxies, cert)
        _check_allowed_host(request.method or "?", safe_url(request.url or "", hide_path=self.hide_path),
                            pool.host, self.allowed_hosts)
        if self.require_tls and pool.scheme != "https" and not url_policy.is_loopback_host(pool.host):
            raise URLRefused(f"{request.method or '?'} {safe_url(request.url or '', hide_path=self.hide_path)}: "
                             "refused, a secret is sent only over https (plain http only to a loopback host)")
        return pool

    def init_poolmanager(self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any) -> None:
        super().init_poolmanager(connections, maxsize, block, **pool_kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": _GuardedHTTPConnectionPool,
            "https": _GuardedHTTPSConnectionPool,
        }

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        # Through a proxy the guard would check the proxy, not the destination.
        raise PermanentError("Outbound calls do not go through proxies (the egress guard would be bypassed).")

    def send(self, request: requests.PreparedRequest, stream: bool = False, timeout: Any = None,
             verify: bool | str = True, cert: Any = None,
             proxies: Mapping[str, str] | None = None) -> requests.Response:
        if timeout is None:
            timeout = self.default_timeout
        try:
            return super().send(request, stream=stream, timeout=timeout, verify=verify, cert=cert, proxies=proxies)
        except requests.RequestException as exc:
            where = safe_url(request.url or "", hide_path=self.hide_path)
            raise _transport_error(request.method or "?", where, exc) from None


def _no_redirect_target(response: requests.Response) -> None:
    return None


def _checked_prepare(session: requests.Session, hide_path: bool, allowed_hosts: Collection[str] | None,
                     require_tls: bool = False) -> Callable[[requests.Request], requests.PreparedRequest]:
    prepare = session.prepare_request

    def prepare_request(request: requests.Request) -> requests.PreparedRequest:
        # The URL as the caller gave it, before requests normalises it (its backslashes and
        # percent-encoded hosts are gone from the prepared URL, and so is the evidence).
        check_destination(str(request.method or "?").upper(), str(request.url), allowed_hosts=allowed_hosts,
                          hide_path=hide_path, require_tls=require_tls)
        return prepare(request)

    return prepare_request


def guard_session(session: SessionT, timeout: tuple[float, float] = (5.0, 10.0), *,
                  hide_path: bool = False, allowed_hosts: Collection[str] | None = None,
                  require_tls: bool = False) -> SessionT:
    """Put the egress guard on ``session`` (e.g. a requests-oauthlib ``OAuth2Session``) and return it.

    After this the session connects only to addresses the egress policy allows, gives
    requests without a timeout ``timeout``, returns 3xx responses instead of following
    them (a redirect would carry Authorization to a host nobody chose), ignores proxy
    variables and ~/.netrc, and raises ``TransientError``/``PermanentError`` for transport
    failures. It does not map statuses to errors (oauthlib reads the 4xx body itself) nor
    limit the body size: ``http_request`` does both. ``hide_path`` keeps the URL path
    out of error messages (a Slack incoming-webhook URL is a secret). Every URL passes
    ``url_policy``; with ``allowed_hosts`` only those hosts are reached (``URLRefused``);
    with ``require_tls`` only https (plain http to a loopback host), for callers sending a secret.
    """
    _check_timeout(timeout)
    # HTTP(S)_PROXY would route around the guard; ~/.netrc would add credentials.
    session.trust_env = False
    # A self-hosted service may talk to hosts signed by an internal CA; honour the standard
    # variable explicitly, since trust_env is off.
    session.verify = os.environ.get("REQUESTS_CA_BUNDLE") or True
    session.headers["User-Agent"] = USER_AGENT
    # requests-oauthlib posts with allow_redirects=True; Session.resolve_redirects stops
    # when there is no target, so the 3xx comes back to the caller.
    session.get_redirect_target = _no_redirect_target  # type: ignore[method-assign]
    session.prepare_request = _checked_prepare(session, hide_path, allowed_hosts,  # type: ignore[method-assign]
                                               require_tls)
    adapter = _GuardedAdapter(timeout, hide_path=hide_path, allowed_hosts=allowed_hosts, require_tls=require_tls)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def egress_session(timeout: tuple[float, float] = (5.0, 10.0), *, hide_path: bool = False,
                   allowed_hosts: Collection[str] | None = None, require_tls: bool = False) -> requests.Session:
    """A fresh ``requests.Session`` with ``guard_session`` applied."""
    return guard_session(requests.Session(), timeout, hide_path=hide_path, allowed_hosts=allowed_hosts,
                         require_tls=require_tls)


# --- the entry point ---------------------------------------------------------------------

def _check_timeout(timeout: Any) -> None:
    if (not isinstance(timeout, tuple) or len(timeout) != 2
            or not all(isinstance(t, (int, float)) and math.isfinite(t) and t > 0 for t in timeout)):
        raise ValueError("timeout must be a (connect, read) pair of positive seconds")


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delay-seconds or HTTP-date, RFC 9110 §10.2.3)."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _status_error(method: str, where: str, response: requests.Response) -> ExternalServiceError | None:
    status = response.status_code
    if status < 400:
        return None
    reason = f"{method} {where}: HTTP {status}"
    if status in (408, 429) or status >= 500:
        error: ExternalServiceError = TransientError(
            reason, status, retry_after=parse_retry_after(response.headers.get("Retry-After")))
    else:
        error = PermanentError(reason, status)
    error.response = response  # type: ignore[attr-defined]  # for callers that read the body
    return error


def _transport_error(method: str, where: str, exc: requests.RequestException) -> ExternalServiceError:
    """Map a requests exception to our tree with a message of our own.

    ``str(exc)`` from urllib3 repeats the request target with its query string, so it is
    never copied; the root cause's class name is kept for diagnosis.
    """
    cause: BaseException = exc
    for _ in range(10):  # bounded: a chain could in principle loop back on itself
        following = cause.__cause__ or (None if cause.__suppress_context__ else cause.__context__)
        if following is None:
            break
        cause = following
    # Never %-formatting: ``where`` is a URL and may hold %20 (issue 12: a probe of
    # http://127.0.0.1:1/a%20b failed with a ValueError from this very line).
    def detail(reason: str) -> str:
        return f"{method} {where}: {reason} ({type(cause).__name__})"

    if isinstance(exc, requests.exceptions.SSLError):
        return PermanentError(detail("TLS failure"))
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return TransientError(detail("connect timeout"))
    if isinstance(exc, requests.exceptions.ReadTimeout):
        return TransientError(detail("read timeout"))
    if isinstance(exc, requests.exceptions.ContentDecodingError):
        return PermanentError(detail("undecodable body"))
    if isinstance(exc, (requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError)):
        if isinstance(cause, socket.gaierror):
            return TransientError(detail("DNS failure"))
        if isinstance(cause, TimeoutError):  # a read timeout while streaming the body
            return TransientError(detail("read timeout"))
        return TransientError(detail("connection failed"))
    if isinstance(exc, (requests.exceptions.InvalidURL, requests.exceptions.InvalidSchema,
                        requests.exceptions.MissingSchema, requests.exceptions.InvalidHeader)):
        return PermanentError(detail("invalid request"))
    return TransientError(detail("request failed"))


def _read_body(method: str, where: str, response: requests.Response, max_bytes: int) -> None:
    """Read at most ``max_bytes`` (after decompression, so a gzip bomb stops early)."""
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        response.close()
        raise PermanentError(f"{method} {where}: response larger than {max_bytes} bytes", response.status_code)
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_content(chunk_size=64 * 1024):
        size += len(chunk)
        if size > max_bytes:
            response.close()
            raise PermanentError(f"{method} {where}: response larger than {max_bytes} bytes", response.status_code)
        chunks.append(chunk)
    response._content = b"".join(chunks)  # what .content/.json() read from now on


def http_request(method: str, url: str, *, timeout: tuple[float, float], retry: int = 0,
                 headers: Mapping[str, str] | None = None, data: Any = None, json: Any = None,
                 auth: Any = None, allow_redirects: bool = False, max_bytes: int = DEFAULT_MAX_BYTES,
                 connection_id: int | str | None = None, hide_path: bool = False,
                 allowed_hosts: Collection[str] | None = None, require_tls: bool = False) -> requests.Response:
    """Make one outbound HTTP call and return the response for a 2xx or 3xx status.

    ``timeout`` is a required (connect, read) pair. ``retry`` allows one more try (never
    more) for idempotent methods after a ``TransientError``, waiting ``Retry-After`` when
    it is at most ``MAX_INLINE_WAIT_SECONDS``. Redirects are never followed: the 3xx comes
    back and the caller decides. Raises ``TransientError`` (DNS, timeouts, resets, 5xx,
    408, 429 with ``retry_after``) or ``PermanentError`` (other 4xx, TLS, egress refusal,
    more than ``max_bytes``); 4xx/5xx errors carry the ``response``. ``hide_path`` keeps a
    secret-bearing path (a Slack incoming-webhook URL) out of messages and logs.
    ``URLRefused`` (permanent, nothing sent) for a URL ``url_policy`` refuses, or whose host
    is not in ``allowed_hosts`` when the caller gives one (checked again on the connection),
    or, with ``require_tls`` (a caller sending a secret), a plain http URL to a non-loopback host.
    """
    _check_timeout(timeout)
    if allow_redirects:
        raise ValueError("redirects are never followed; handle the 3xx response instead")
    method = method.upper()
    where = safe_url(url, hide_path=hide_path)
    check_destination(method, url, allowed_hosts=allowed_hosts, hide_path=hide_path, require_tls=require_tls)
    tries = 1 + (min(max(retry, 0), 1) if method in IDEMPOTENT_METHODS else 0)
    for attempt in range(1, tries + 1):
        try:
            return _attempt(method, url, where, timeout=timeout, headers=headers, data=data, json=json,
                            auth=auth, max_bytes=max_bytes, connection_id=connection_id,
                            hide_path=hide_path, allowed_hosts=allowed_hosts, require_tls=require_tls)
        except TransientError as exc:
            wait = exc.retry_after if exc.retry_after is not None else random.uniform(*RETRY_PAUSE_SECONDS)
            if attempt == tries or wait > MAX_INLINE_WAIT_SECONDS:
                raise
            logger.info("Retrying %s %s in %.1f s after: %s (connection %s)", method, where, wait, exc, connection_id)
            _sleep(wait)
    raise AssertionError("unreachable: the last try returns or raises")


def _attempt(method: str, url: str, where: str, *, timeout: tuple[float, float], headers: Mapping[str, str] | None,
             data: Any, json: Any, auth: Any, max_bytes: int, connection_id: int | str | None,
             hide_path: bool, allowed_hosts: Collection[str] | None,
             require_tls: bool = False) -> requests.Response:
    started = time.monotonic()
    response: requests.Response | None = None
    with egress_session(timeout, hide_path=hide_path, allowed_hosts=allowed_hosts,
                        require_tls=require_tls) as session:
        try:
            response = session.request(method, url, headers=dict(headers or {}), data=data, json=json, auth=auth,
                                       timeout=timeout, allow_redirects=False, stream=True)
            if method == "HEAD":
                response._content = b""
            else:
                _read_body(method, where, response, max_bytes)
        except ExternalServiceError as exc:
            _log_failure(started, exc, connection_id)
            raise
        except requests.RequestException as exc:
            error = _transport_error(method, where, exc)
            _log_failure(started, error, connection_id)
            raise error from None
        finally:
            # The body was read into memory (or refused); give the socket back either way.
            if response is not None:
                response.close()
    assert response is not None  # the try above returned it or raised
    elapsed_ms = (time.monotonic() - started) * 1000
    logger.info("%s %s -> %s in %.0f ms (connection %s)", method, where, response.status_code, elapsed_ms,
                connection_id)
    error = _status_error(method, where, response)
    if error is not None:
        raise error
    return response


def _log_failure(started: float, exc: ExternalServiceError, connection_id: int | str | None) -> None:
    elapsed_ms = (time.monotonic() - started) * 1000
    # The message already names the method and the safe URL.
    logger.warning("%s after %.0f ms (connection %s)", exc, elapsed_ms, connection_id)
