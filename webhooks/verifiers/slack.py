"""Slack request signatures (``X-Slack-Signature``, version ``v0``).

Slack sends ``X-Slack-Request-Timestamp: <unix seconds>`` and
``X-Slack-Signature: v0=<hex HMAC-SHA256(secret, "v0:" + timestamp + ":" + body)>``
(https://api.slack.com/authentication/verifying-requests-from-slack). The timestamp is signed
exactly as it appears in the header, and must be within ``tolerance_seconds`` of ``now``.

The replay key is the body hash alone: Slack re-signs each retry with a fresh timestamp
(adding ``X-Slack-Retry-Num``), and a retry of an accepted request must be seen as a duplicate.
Event and slash-command bodies carry their own unique ids (``event_id``, ``trigger_id``), so
two genuinely different requests do not share a body. Slack's headers carry no event name.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from webhooks.verifiers.base import (
    BAD_SIGNATURE,
    MALFORMED_HEADER,
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

SIGNATURE_HEADER = "X-Slack-Signature"
TIMESTAMP_HEADER = "X-Slack-Request-Timestamp"
VERSION = "v0"
PREFIX = VERSION + "="


def slack_signature(secret: bytes, body: bytes, timestamp: str) -> str:
    """The ``X-Slack-Signature`` value for ``body`` sent with ``X-Slack-Request-Timestamp: timestamp``."""
    base = b"%s:%s:%s" % (VERSION.encode("ascii"), timestamp.encode("ascii"), body)
    return PREFIX + hmac_sha256(secret, base).hex()


def sign_slack(secret: bytes, body: bytes, *, timestamp: int) -> dict[str, str]:
    """Headers of a Slack request carrying ``body`` signed at ``timestamp`` (Unix seconds)."""
    text = str(int(timestamp))
    return {TIMESTAMP_HEADER: text, SIGNATURE_HEADER: slack_signature(secret, body, text)}


class SlackSigningVerifier:
    scheme: ClassVar[str] = "slack"

    def verify(self, *, body: bytes, headers: Mapping[str, str], secrets: Sequence[bytes],
               options: Mapping[str, Any], now: float, tolerance_seconds: int) -> VerificationResult:
        check_tolerance(tolerance_seconds)
        try:
            folded = fold_headers(headers)
        except MalformedHeaders:
            return VerificationResult.fail(MALFORMED_HEADER)
        if not has_usable_secret(secrets):
            return VerificationResult.fail(NO_SECRET)

        raw_signature = header_value(folded, SIGNATURE_HEADER)
        if raw_signature is None:
            return VerificationResult.fail(MISSING_SIGNATURE)
        stamped = signed_timestamp(folded, TIMESTAMP_HEADER)
        if isinstance(stamped, str):
            return VerificationResult.fail(stamped)
        raw_timestamp, timestamp = stamped
        given = ascii_bytes(raw_signature)
        if given is None or not raw_signature.startswith(PREFIX) or len(raw_signature) != len(PREFIX) + 64:
            return VerificationResult.fail(MALFORMED_HEADER)

        index = matching_secret_index(
            secrets, [given], lambda secret: slack_signature(secret, body, raw_timestamp).encode("ascii"))
        if index is None:
            return VerificationResult.fail(BAD_SIGNATURE)
        stale = freshness_reason(timestamp, now=now, tolerance_seconds=tolerance_seconds)
        if stale is not None:
            return VerificationResult.fail(stale, secret_index=index, signed_timestamp=timestamp)
        return VerificationResult(ok=True, secret_index=index, signed_timestamp=timestamp,
                                  replay_key=body_replay_key(body))
