"""The contract every webhook signature verifier keeps, and the pieces they share.

Contract
--------
A verifier is a stateless object with a ``scheme`` name and one method::

    verify(*, body, headers, secrets, options, now, tolerance_seconds) -> VerificationResult

* ``body`` is the RAW request body, exactly the bytes received, before any parsing.
* ``headers`` is any mapping of header name to value. Names are matched case-insensitively,
  so Django's ``request.headers`` and a plain ``dict`` both work. A plain mapping that holds
  the same name twice with different values (``"X-A"`` and ``"x-a"``) is refused as
  ``malformed_header``, because which one "wins" would be an accident of iteration order.
* ``secrets`` are the connection's signing secrets, newest first: index 0 is the current
  secret, index 1 the previous one kept valid during a rotation. Empty entries are skipped:
  HMAC with an empty key is computable by anyone, so an unset slot must never verify anything.
* ``options`` are the connection's non-secret signature settings (only ``generic_hmac`` reads
  them; see that module).
* ``now`` is the current Unix time in seconds, passed in so callers and tests control the clock.
* ``tolerance_seconds`` bounds the signed timestamp both ways: a delivery is fresh when
  ``now - tolerance_seconds <= timestamp <= now + tolerance_seconds``. Schemes that sign no
  timestamp (GitHub, generic HMAC without a timestamp header) ignore it.

``verify`` never raises for anything a sender controls: every problem with the request is a
result with ``ok=False`` and a stable snake_case ``reason`` (the constants below). It raises
``ValueError`` only for a programming error by the caller (a negative tolerance). No secret,
and no value derived from a secret (an expected signature), is ever logged, returned or put
in an exception.

Order of checks: headers are parsed first (``missing_*`` / ``malformed_*``), then the
signature is checked against each secret (``bad_signature``), and only then the timestamp's
freshness (``stale_timestamp`` / ``future_timestamp``). So a freshness reason always means
"genuinely signed by the sender, but outside the window" (a replay, or a skewed clock), while
``bad_signature`` means "not signed by anyone holding a secret we accept".

Replay key
----------
``replay_key`` is a hex SHA-256 derived only from content the signature covers, so an
attacker who changes an unsigned header cannot make a replayed delivery look new:

* schemes with no signed message id (GitHub, Slack, generic HMAC): ``sha256(body)``. Slack and
  generic-with-timestamp deliberately leave the signed timestamp out, because a sender's retry
  is re-signed with a fresh timestamp and must still be recognised as a duplicate.
* Standard Webhooks: ``sha256(b"%d:" % len(id) + id + body)`` with ``id`` the signed
  ``webhook-id`` in UTF-8; the length prefix keeps (id, body) pairs from colliding.

The receiver should scope the key to the connection (the same body may legitimately reach two
connections). It is set only when ``ok`` is true.
"""
from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, runtime_checkable

# Stable reasons (they go into the activity log and metrics; never rename one).
MISSING_SIGNATURE = "missing_signature"
MISSING_TIMESTAMP = "missing_timestamp"
MISSING_MESSAGE_ID = "missing_message_id"
MALFORMED_HEADER = "malformed_header"
MALFORMED_TIMESTAMP = "malformed_timestamp"
UNSUPPORTED_SIGNATURE_VERSION = "unsupported_signature_version"
BAD_SIGNATURE = "bad_signature"
STALE_TIMESTAMP = "stale_timestamp"
FUTURE_TIMESTAMP = "future_timestamp"
NO_SECRET = "no_secret"  # noqa: S105 (a reason code, not a credential)
MISCONFIGURED = "misconfigured"

REASONS: frozenset[str] = frozenset({
    MISSING_SIGNATURE, MISSING_TIMESTAMP, MISSING_MESSAGE_ID, MALFORMED_HEADER, MALFORMED_TIMESTAMP,
    UNSUPPORTED_SIGNATURE_VERSION, BAD_SIGNATURE, STALE_TIMESTAMP, FUTURE_TIMESTAMP, NO_SECRET, MISCONFIGURED,
})

# Unix seconds as plain ASCII digits. Signs, spaces, fractions and exponents are refused: the
# signed text must be exactly the number we check, with nothing a parser might read two ways.
# Twelve digits reach the year 33658, far past any honest clock.
_TIMESTAMP_RE = re.compile(r"[0-9]{1,12}")


@dataclass(frozen=True)
class VerificationResult:
    """What a verifier concluded about one delivery.

    ``secret_index`` and ``signed_timestamp`` are also filled in for ``stale_timestamp`` and
    ``future_timestamp`` (the signature was valid), so the activity log can tell a replay of a
    genuine delivery from a forgery. ``event_name`` and ``unsigned_delivery_id`` come from
    headers the signature does NOT cover: use them for routing and display, never for a
    security decision.
    """

    ok: bool
    reason: str = ""
    secret_index: int | None = None
    signed_timestamp: int | None = None
    message_id: str | None = None
    event_name: str | None = None
    replay_key: str | None = None
    unsigned_delivery_id: str | None = None

    @classmethod
    def fail(cls, reason: str, **fields: Any) -> VerificationResult:
        return cls(ok=False, reason=reason, **fields)


@runtime_checkable
class Verifier(Protocol):
    scheme: ClassVar[str]

    def verify(self, *, body: bytes, headers: Mapping[str, str], secrets: Sequence[bytes],
               options: Mapping[str, Any], now: float, tolerance_seconds: int) -> VerificationResult: ...


class MalformedHeaders(Exception):
    """A header mapping that names one header twice with different values."""


class FoldedHeaders(dict[str, str]):
    """Header names already lower-cased, each once: what `fold_headers` returns."""


def headers_from_environ(environ: Mapping[str, Any]) -> FoldedHeaders:
    """A request's headers from its WSGI environ, folded once for every step of the receiver.

    The environ names each header once (the server joins repeated ones), so there is no
    conflict to find; names are spelt as Django's ``request.headers`` spells them, lower-cased.
    """
    folded = FoldedHeaders()
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            folded[key[5:].replace("_", "-").lower()] = value
        elif key in ("CONTENT_TYPE", "CONTENT_LENGTH") and value:
            folded[key.replace("_", "-").lower()] = value
    return folded


def fold_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Header names lower-cased; raises ``MalformedHeaders`` on a conflicting duplicate."""
    if isinstance(headers, FoldedHeaders):
        return headers
    folded: dict[str, str] = {}
    for name, value in headers.items():
        key = name.lower()
        if key in folded and folded[key] != value:
            raise MalformedHeaders(key)
        folded[key] = value
    return folded


def header_value(folded: Mapping[str, str], name: str) -> str | None:
    """The header's value with surrounding whitespace removed (RFC 9110 OWS), or None if absent or blank."""
    value = folded.get(name.lower())
    if value is None:
        return None
    value = value.strip(" \t")
    return value or None


def parse_timestamp(raw: str) -> int | None:
    """Unix seconds from a header value, or None when it is not plain ASCII digits."""
    if not _TIMESTAMP_RE.fullmatch(raw):
        return None
    return int(raw)


def signed_timestamp(folded: Mapping[str, str], name: str) -> tuple[str, int] | str:
    """The timestamp header as sent and as Unix seconds, or the reason to refuse: missing
    (``missing_timestamp``) or not plain digits (``malformed_timestamp``)."""
    raw = header_value(folded, name)
    if raw is None:
        return MISSING_TIMESTAMP
    value = parse_timestamp(raw)
    if value is None:
        return MALFORMED_TIMESTAMP
    return raw, value


def freshness_reason(timestamp: int, *, now: float, tolerance_seconds: int) -> str | None:
    """``stale_timestamp`` / ``future_timestamp`` when outside the window, else None."""
    if timestamp < now - tolerance_seconds:
        return STALE_TIMESTAMP
    if timestamp > now + tolerance_seconds:
        return FUTURE_TIMESTAMP
    return None


def check_tolerance(tolerance_seconds: int) -> None:
    if tolerance_seconds < 0:
        raise ValueError("tolerance_seconds must be zero or positive")


def usable_secrets(secrets: Sequence[bytes]) -> Iterator[tuple[int, bytes]]:
    """(index, secret) for every non-empty secret, keeping the caller's indexes."""
    for index, secret in enumerate(secrets):
        if secret:
            yield index, secret


def has_usable_secret(secrets: Sequence[bytes]) -> bool:
    return any(secrets)


def hmac_sha256(key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, hashlib.sha256).digest()


def matching_secret_index(secrets: Sequence[bytes], candidates: Sequence[bytes],
                          expected_for: Callable[[bytes], bytes]) -> int | None:
    """Index of the first secret whose expected encoded signature equals one of ``candidates``.

    Comparison is on the encoded text exactly as sent (lower-case hex, canonical base64), with
    ``hmac.compare_digest``. Comparing text rather than decoded bytes is deliberate: decoders
    accept several spellings of one value (``A`` and ``a`` in hex, non-zero padding bits in
    base64), and a signature that can be altered and still pass is malleable.
    """
    for index, secret in usable_secrets(secrets):
        expected = expected_for(secret)
        # Every candidate is compared (no early exit inside one secret) so the time taken
        # does not reveal which of several presented signatures was the good one.
        matched = False
        for candidate in candidates:
            matched |= hmac.compare_digest(expected, candidate)
        if matched:
            return index
    return None


def ascii_bytes(value: str) -> bytes | None:
    """The value as bytes when it is pure ASCII (every signature encoding is), else None."""
    if not value.isascii():
        return None
    return value.encode("ascii")


def body_replay_key(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def message_replay_key(message_id: str, body: bytes) -> str:
    encoded_id = message_id.encode("utf-8")
    digest = hashlib.sha256(b"%d:" % len(encoded_id))
    digest.update(encoded_id)
    digest.update(body)
    return digest.hexdigest()
