"""GitHub webhook signatures (``X-Hub-Signature-256``).

GitHub sends ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, body)>`` in lower-case hex
(https://docs.github.com/webhooks/using-webhooks/validating-webhook-deliveries). Nothing else is
signed: there is no signed timestamp, so ``tolerance_seconds`` is ignored and replay protection
rests entirely on the body-hash replay key. ``X-GitHub-Event`` (event name) and
``X-GitHub-Delivery`` (delivery GUID, which stays the same on a manual redelivery but is not
signed) are reported for routing and display only. The legacy SHA-1 ``X-Hub-Signature`` is
not accepted.
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
    has_usable_secret,
    header_value,
    hmac_sha256,
    matching_secret_index,
)

SIGNATURE_HEADER = "X-Hub-Signature-256"
EVENT_HEADER = "X-GitHub-Event"
DELIVERY_HEADER = "X-GitHub-Delivery"
PREFIX = "sha256="


def github_signature(secret: bytes, body: bytes) -> str:
    """The ``X-Hub-Signature-256`` value GitHub would send for ``body``."""
    return PREFIX + hmac_sha256(secret, body).hex()


def sign_github(secret: bytes, body: bytes, *, event: str = "ping",
                delivery: str = "00000000-0000-0000-0000-000000000000") -> dict[str, str]:
    """Headers of a GitHub delivery of ``body`` (for tests, benchmarks and operator docs)."""
    return {SIGNATURE_HEADER: github_signature(secret, body), EVENT_HEADER: event, DELIVERY_HEADER: delivery}


class GitHubHmacVerifier:
    scheme: ClassVar[str] = "github"

    def verify(self, *, body: bytes, headers: Mapping[str, str], secrets: Sequence[bytes],
               options: Mapping[str, Any], now: float, tolerance_seconds: int) -> VerificationResult:
        check_tolerance(tolerance_seconds)
        try:
            folded = fold_headers(headers)
        except MalformedHeaders:
            return VerificationResult.fail(MALFORMED_HEADER)
        event_name = header_value(folded, EVENT_HEADER)
        delivery_id = header_value(folded, DELIVERY_HEADER)
        informational = {"event_name": event_name, "unsigned_delivery_id": delivery_id}

        if not has_usable_secret(secrets):
            return VerificationResult.fail(NO_SECRET, **informational)
        raw = header_value(folded, SIGNATURE_HEADER)
        if raw is None:
            return VerificationResult.fail(MISSING_SIGNATURE, **informational)
        given = ascii_bytes(raw)
        # sha256= plus exactly 64 characters; case and alphabet are checked by the exact
        # comparison with our own lower-case hexdigest.
        if given is None or not raw.startswith(PREFIX) or len(raw) != len(PREFIX) + 64:
            return VerificationResult.fail(MALFORMED_HEADER, **informational)

        index = matching_secret_index(
            secrets, [given], lambda secret: github_signature(secret, body).encode("ascii"))
        if index is None:
            return VerificationResult.fail(BAD_SIGNATURE, **informational)
        return VerificationResult(ok=True, secret_index=index, replay_key=body_replay_key(body), **informational)
