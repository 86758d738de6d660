"""HMAC-SHA256 signatures configured per connection, for senders with no dedicated scheme.

Options (the connection's signature settings, passed as ``options``; unknown keys are refused
so a misspelt ``timestamp_header`` cannot silently switch freshness checking off):

=================== ======== ============================================================
key                 default  meaning
=================== ======== ============================================================
``header``          required name of the header carrying the signature, e.g. ``X-Signature``
``prefix``          ``""``   literal text before the signature, e.g. ``sha256=`` (case-sensitive)
``encoding``        ``hex``  ``hex`` (lower-case, 64 characters) or ``base64`` (RFC 4648
                             standard alphabet with ``=`` padding, 44 characters)
``timestamp_header`` none    if set, the name of a header carrying the signing time in Unix
                             seconds (ASCII digits only); the timestamp is then signed and
                             must be within ``tolerance_seconds`` of ``now``
``event_header``    none     if set, a header whose value is reported as ``event_name``
                             (unsigned: routing and display only)
=================== ======== ============================================================

The signed message:

* without ``timestamp_header``: the raw body, so the signature is
  ``prefix + encode(HMAC-SHA256(secret, body))``;
* with ``timestamp_header``: the timestamp header's value exactly as sent (after removing
  surrounding spaces and tabs), one ASCII full stop, then the raw body:
  ``prefix + encode(HMAC-SHA256(secret, timestamp + b"." + body))``. This is the layout Stripe
  and Standard Webhooks use; because the timestamp is digits only, the first ``.`` always
  ends it, so no other (timestamp, body) pair signs to the same message.

The signature is compared as text with the expected encoding (so upper-case hex, unpadded or
non-canonical base64 are refused). The replay key is the body hash in both modes: a sender's
retry re-signed with a fresh timestamp is still recognised as a duplicate.
"""
from __future__ import annotations

import base64
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from webhooks.verifiers.base import (
    BAD_SIGNATURE,
    MALFORMED_HEADER,
    MISCONFIGURED,
    MISSING_SIGNATURE,
    NO_SECRET,
    MalformedHeaders,
    VerificationResult,
    ascii_bytes,
    body_replay_key,
    check_tolerance,
    fold_headers,
    freshness_reason,
    has_usable_secret,
    header_value,
    hmac_sha256,
    matching_secret_index,
    signed_timestamp,
)

logger = logging.getLogger(__name__)

ENCODINGS = ("hex", "base64")
OPTION_KEYS = frozenset({"header", "prefix", "encoding", "timestamp_header", "event_header"})
# RFC 9110 §5.6.2 token: what a header name may be.
_HEADER_NAME_RE = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_ENCODED_LENGTH = {"hex": 64, "base64": 44}


@dataclass(frozen=True)
class GenericHmacOptions:
    header: str
    prefix: str = ""
    encoding: str = "hex"
    timestamp_header: str | None = None
    event_header: str | None = None

    @classmethod
    def from_mapping(cls, options: Mapping[str, Any]) -> GenericHmacOptions:
        """Validated options; raises ``ValueError`` naming the offending key (values are not secret).

        The connection type calls this when the settings are saved, so a bad setting is a 400
        for the operator rather than every delivery failing later.
        """
        unknown = sorted(set(options) - OPTION_KEYS)
        if unknown:
            raise ValueError(f"unknown signature option(s): {', '.join(unknown)}")
        header = options.get("header")
        if not isinstance(header, str) or not _HEADER_NAME_RE.fullmatch(header):
            raise ValueError("header must be a header name, e.g. X-Signature")
        prefix = options.get("prefix") or ""
        if not isinstance(prefix, str) or not prefix.isascii() or prefix != prefix.strip():
            raise ValueError("prefix must be ASCII text without surrounding whitespace")
        encoding = options.get("encoding") or "hex"
        if encoding not in ENCODINGS:
            raise ValueError(f"encoding must be one of {', '.join(ENCODINGS)}")
        optional: dict[str, str | None] = {}
        for key in ("timestamp_header", "event_header"):
            value = options.get(key) or None
            if value is not None and (not isinstance(value, str) or not _HEADER_NAME_RE.fullmatch(value)):
                raise ValueError(f"{key} must be a header name")
            optional[key] = value
        timestamp_header = optional["timestamp_header"]
        if timestamp_header is not None and timestamp_header.lower() == header.lower():
            raise ValueError("timestamp_header must differ from header")
        return cls(header=header, prefix=prefix, encoding=encoding,
                   timestamp_header=timestamp_header, event_header=optional["event_header"])

    def as_dict(self) -> dict[str, str | None]:
        return {"header": self.header, "prefix": self.prefix, "encoding": self.encoding,
                "timestamp_header": self.timestamp_header, "event_header": self.event_header}


def _encode(digest: bytes, encoding: str) -> str:
    if encoding == "hex":
        return digest.hex()
    return base64.b64encode(digest).decode("ascii")


def generic_hmac_signature(secret: bytes, body: bytes, settings: GenericHmacOptions,
                           timestamp: str | None = None) -> str:
    """The signature header value for ``body`` (and ``timestamp`` when the settings sign one)."""
    if (timestamp is None) != (settings.timestamp_header is None):
        raise ValueError("a timestamp is needed exactly when timestamp_header is set")
    message = body if timestamp is None else timestamp.encode("ascii") + b"." + body
    return settings.prefix + _encode(hmac_sha256(secret, message), settings.encoding)


def sign_generic_hmac(secret: bytes, body: bytes, options: Mapping[str, Any], *,
                      timestamp: int | None = None) -> dict[str, str]:
    """Headers a sender configured with ``options`` would send for ``body``."""
    settings = GenericHmacOptions.from_mapping(options)
    text = None if timestamp is None else str(int(timestamp))
    headers = {settings.header: generic_hmac_signature(secret, body, settings, text)}
    if settings.timestamp_header is not None:
        if text is None:
            raise ValueError("these options sign a timestamp: pass timestamp=")
        headers[settings.timestamp_header] = text
    return headers


class GenericHmacVerifier:
    scheme: ClassVar[str] = "generic_hmac"

    def verify(self, *, body: bytes, headers: Mapping[str, str], secrets: Sequence[bytes],
               options: Mapping[str, Any], now: float, tolerance_seconds: int) -> VerificationResult:
        check_tolerance(tolerance_seconds)
        try:
            settings = GenericHmacOptions.from_mapping(options)
        except ValueError as exc:
            # A configuration problem, not the sender's: say so loudly, once per delivery.
            logger.warning("generic_hmac signature options are invalid: %s", exc)
            return VerificationResult.fail(MISCONFIGURED)
        try:
            folded = fold_headers(headers)
        except MalformedHeaders:
            return VerificationResult.fail(MALFORMED_HEADER)
        event_name = header_value(folded, settings.event_header) if settings.event_header else None
        if not has_usable_secret(secrets):
            return VerificationResult.fail(NO_SECRET, event_name=event_name)

        raw_signature = header_value(folded, settings.header)
        if raw_signature is None:
            return VerificationResult.fail(MISSING_SIGNATURE, event_name=event_name)
        raw_timestamp: str | None = None
        timestamp: int | None = None
        if settings.timestamp_header is not None:
            stamped = signed_timestamp(folded, settings.timestamp_header)
            if isinstance(stamped, str):
                return VerificationResult.fail(stamped, event_name=event_name)
            raw_timestamp, timestamp = stamped
        given = ascii_bytes(raw_signature)
        expected_length = len(settings.prefix) + _ENCODED_LENGTH[settings.encoding]
        if given is None or not raw_signature.startswith(settings.prefix) or len(raw_signature) != expected_length:
            return VerificationResult.fail(MALFORMED_HEADER, event_name=event_name)

        index = matching_secret_index(
            secrets, [given],
            lambda secret: generic_hmac_signature(secret, body, settings, raw_timestamp).encode("ascii"))
        if index is None:
            return VerificationResult.fail(BAD_SIGNATURE, event_name=event_name)
        if timestamp is not None:
            stale = freshness_reason(timestamp, now=now, tolerance_seconds=tolerance_seconds)
            if stale is not None:
                return VerificationResult.fail(stale, secret_index=index, signed_timestamp=timestamp,
                                               event_name=event_name)
        return VerificationResult(ok=True, secret_index=index, signed_timestamp=timestamp, event_name=event_name,
                                  replay_key=body_replay_key(body))
