"""Standard Webhooks signatures (https://www.standardwebhooks.com, symmetric ``v1`` scheme).

Headers: ``webhook-id`` (the message id, identical on every retry), ``webhook-timestamp``
(Unix seconds of this attempt) and ``webhook-signature``, a space-separated list of
``<version>,<base64 signature>``. Several entries appear while the sender rotates its key; the
delivery passes if ANY ``v1`` entry matches ANY of our secrets. Other versions (``v1a`` is the
asymmetric ed25519 scheme) are skipped; a header with no ``v1`` entry at all is
``unsupported_signature_version``.

The signed content is ``<webhook-id>.<webhook-timestamp>.<body>`` and the signature is
``base64(HMAC-SHA256(key, content))``. The secret is given as the operator pastes it,
``whsec_<base64 key>`` (the bare base64 form is accepted too, as the reference libraries do);
the HMAC key is the base64-DECODED bytes, not the text.

Stricter than the reference library, on purpose:

* ``webhook-id`` must be printable ASCII of at most 256 characters with no ``.``: the spec
  warns that a ``.`` in the id lets an attacker move the id/timestamp/body boundaries of a
  valid signature; header values arrive latin-1-decoded, so only ASCII round-trips to the
  exact bytes the sender signed.
* the timestamp must be plain digits (the spec says "integer unix timestamp").
* signatures are compared as canonical base64 text, so a re-spelled signature is refused.

The message id is signed, so it is reported as ``message_id`` and is part of the replay key.
"""
from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Mapping, Sequence
from secrets import token_bytes
from typing import Any, ClassVar

from webhooks.verifiers.base import (
    BAD_SIGNATURE,
    MALFORMED_HEADER,
    MISCONFIGURED,
    MISSING_MESSAGE_ID,
    MISSING_SIGNATURE,
    NO_SECRET,
    UNSUPPORTED_SIGNATURE_VERSION,
    MalformedHeaders,
    VerificationResult,
    check_tolerance,
    fold_headers,
    freshness_reason,
    has_usable_secret,
    header_value,
    hmac_sha256,
    matching_secret_index,
    message_replay_key,
    signed_timestamp,
)

logger = logging.getLogger(__name__)

ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"
SECRET_PREFIX = b"whsec_"
VERSION = "v1"
MAX_MESSAGE_ID_LENGTH = 256


def decode_standard_secret(secret: bytes | str) -> bytes:
    """The HMAC key inside ``whsec_<base64>`` (or bare base64); raises ``ValueError`` if unusable.

    The error message never contains the secret.
    """
    raw = secret.encode("ascii", "replace") if isinstance(secret, str) else secret
    raw = raw.strip()
    if raw.startswith(SECRET_PREFIX):
        raw = raw[len(SECRET_PREFIX):]
    # Keys are often shown without padding; restore it (a length of 1 mod 4 is never base64).
    if len(raw) % 4 == 1:
        raise ValueError("the signing secret is not valid base64")
    raw += b"=" * (-len(raw) % 4)
    try:
        key = base64.b64decode(raw, validate=True)
    except binascii.Error:
        raise ValueError("the signing secret is not valid base64") from None
    if not key:
        raise ValueError("the signing secret is empty")
    return key


def generate_standard_secret(nbytes: int = 32) -> str:
    """A new random ``whsec_`` secret (the spec asks for 24 to 64 bytes)."""
    if not 24 <= nbytes <= 64:
        raise ValueError("a Standard Webhooks key has 24 to 64 bytes")
    return "whsec_" + base64.b64encode(token_bytes(nbytes)).decode("ascii")


def standard_signature(key: bytes, *, message_id: str, timestamp: str, body: bytes) -> str:
    """One ``v1,<base64>`` entry for the decoded ``key``."""
    content = message_id.encode("ascii") + b"." + timestamp.encode("ascii") + b"." + body
    return VERSION + "," + base64.b64encode(hmac_sha256(key, content)).decode("ascii")


def sign_standard_webhooks(secret: bytes | str, body: bytes, *, message_id: str, timestamp: int,
                           extra_secrets: Sequence[bytes | str] = ()) -> dict[str, str]:
    """Headers a Standard Webhooks sender would send, signed with ``secret`` and each of ``extra_secrets``."""
    text = str(int(timestamp))
    signatures = [standard_signature(decode_standard_secret(s), message_id=message_id, timestamp=text, body=body)
                  for s in (secret, *extra_secrets)]
    return {ID_HEADER: message_id, TIMESTAMP_HEADER: text, SIGNATURE_HEADER: " ".join(signatures)}


def _valid_message_id(message_id: str) -> bool:
    return (message_id.isascii() and message_id.isprintable() and "." not in message_id
            and len(message_id) <= MAX_MESSAGE_ID_LENGTH)


class StandardWebhooksVerifier:
    scheme: ClassVar[str] = "standard_webhooks"

    def verify(self, *, body: bytes, headers: Mapping[str, str], secrets: Sequence[bytes],
               options: Mapping[str, Any], now: float, tolerance_seconds: int) -> VerificationResult:
        check_tolerance(tolerance_seconds)
        try:
            folded = fold_headers(headers)
        except MalformedHeaders:
            return VerificationResult.fail(MALFORMED_HEADER)
        if not has_usable_secret(secrets):
            return VerificationResult.fail(NO_SECRET)
        keys = self._decode_keys(secrets)
        if not has_usable_secret(keys):
            return VerificationResult.fail(MISCONFIGURED)

        message_id = header_value(folded, ID_HEADER)
        if message_id is None:
            return VerificationResult.fail(MISSING_MESSAGE_ID)
        if not _valid_message_id(message_id):
            return VerificationResult.fail(MALFORMED_HEADER)
        stamped = signed_timestamp(folded, TIMESTAMP_HEADER)
        if isinstance(stamped, str):
            return VerificationResult.fail(stamped)
        raw_timestamp, timestamp = stamped
        raw_signatures = header_value(folded, SIGNATURE_HEADER)
        if raw_signatures is None:
            return VerificationResult.fail(MISSING_SIGNATURE)
        if not raw_signatures.isascii():
            return VerificationResult.fail(MALFORMED_HEADER)
        entries = raw_signatures.split()
        candidates = [entry[len(VERSION) + 1:].encode("ascii") for entry in entries
                      if entry.startswith(VERSION + ",")]
        if not candidates:
            versioned = all("," in entry and entry.index(",") > 0 for entry in entries)
            return VerificationResult.fail(UNSUPPORTED_SIGNATURE_VERSION if versioned else MALFORMED_HEADER)

        index = matching_secret_index(
            keys, candidates,
            lambda key: standard_signature(key, message_id=message_id, timestamp=raw_timestamp,
                                           body=body)[len(VERSION) + 1:].encode("ascii"))
        if index is None:
            return VerificationResult.fail(BAD_SIGNATURE)
        stale = freshness_reason(timestamp, now=now, tolerance_seconds=tolerance_seconds)
        if stale is not None:
            return VerificationResult.fail(stale, secret_index=index, signed_timestamp=timestamp,
                                           message_id=message_id)
        return VerificationResult(ok=True, secret_index=index, signed_timestamp=timestamp, message_id=message_id,
                                  replay_key=message_replay_key(message_id, body))

    @staticmethod
    def _decode_keys(secrets: Sequence[bytes]) -> list[bytes]:
        """Decoded keys at the caller's indexes; an undecodable secret becomes ``b""`` (never matches)."""
        keys: list[bytes] = []
        for index, secret in enumerate(secrets):
            if not secret:
                keys.append(b"")
                continue
            try:
                keys.append(decode_standard_secret(secret))
            except ValueError:
                logger.warning("standard_webhooks secret #%d is not a whsec_ base64 key; it is ignored", index)
                keys.append(b"")
        return keys
