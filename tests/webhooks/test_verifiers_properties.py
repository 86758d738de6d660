"""Properties that hold for every scheme: a correct signature verifies, any single-bit change
of the body, the signature, the signed timestamp or the signed message id does not."""
from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from webhooks.verifiers import get_verifier, sign_generic_hmac, sign_github, sign_slack, sign_standard_webhooks
from webhooks.verifiers.base import VerificationResult

TOLERANCE = 300
PROPERTY_SETTINGS = settings(max_examples=150, deadline=None)

GENERIC_HEX = {"header": "X-Signature", "prefix": "sha256=", "encoding": "hex"}
GENERIC_BASE64_TIMESTAMPED = {"header": "X-Sig", "encoding": "base64", "timestamp_header": "X-Sig-Timestamp"}


@dataclass(frozen=True)
class Scheme:
    """How to sign for one scheme, and which headers hold what, so one property covers all."""

    name: str
    sign: Callable[[bytes, bytes, int], dict[str, str]]
    signature_header: str
    timestamp_header: str | None
    options: dict[str, str]
    id_header: str | None = None


def _whsec(key: bytes) -> bytes:
    return b"whsec_" + base64.b64encode(key)


SCHEMES = [
    Scheme("github", lambda secret, body, ts: sign_github(secret, body), "X-Hub-Signature-256", None, {}),
    Scheme("slack", lambda secret, body, ts: sign_slack(secret, body, timestamp=ts), "X-Slack-Signature",
           "X-Slack-Request-Timestamp", {}),
    Scheme("generic_hmac", lambda secret, body, ts: sign_generic_hmac(secret, body, GENERIC_HEX), "X-Signature",
           None, GENERIC_HEX),
    Scheme("generic_hmac", lambda secret, body, ts: sign_generic_hmac(secret, body, GENERIC_BASE64_TIMESTAMPED,
                                                                      timestamp=ts),
           "X-Sig", "X-Sig-Timestamp", GENERIC_BASE64_TIMESTAMPED),
    Scheme("standard_webhooks",
           lambda secret, body, ts: sign_standard_webhooks(_whsec(secret), body, message_id="msg_2KWPBgLlAfxdpx2AI5",
                                                           timestamp=ts),
           "webhook-signature", "webhook-timestamp", {}, id_header="webhook-id"),
]
SCHEME_IDS = ["github", "slack", "generic_hex", "generic_base64_timestamped", "standard_webhooks"]

secrets_st = st.binary(min_size=1, max_size=64)
bodies_st = st.binary(max_size=2048)
timestamps_st = st.integers(min_value=1_000_000_000, max_value=4_000_000_000)


def _verify(scheme: Scheme, body: bytes, headers: dict[str, str], secret: bytes, now: float) -> VerificationResult:
    stored = _whsec(secret) if scheme.name == "standard_webhooks" else secret
    return get_verifier(scheme.name).verify(body=body, headers=headers, secrets=[stored], options=scheme.options,
                                            now=now, tolerance_seconds=TOLERANCE)


def _flip_char(text: str, position: int, bit: int) -> str:
    position %= len(text)
    return text[:position] + chr(ord(text[position]) ^ (1 << bit)) + text[position + 1:]


@pytest.mark.parametrize("scheme", SCHEMES, ids=SCHEME_IDS)
@PROPERTY_SETTINGS
@given(secret=secrets_st, body=bodies_st, timestamp=timestamps_st,
       skew=st.integers(min_value=-TOLERANCE, max_value=TOLERANCE))
def test_correct_signature_within_window_verifies(scheme: Scheme, secret: bytes, body: bytes, timestamp: int,
                                                  skew: int) -> None:
    result = _verify(scheme, body, scheme.sign(secret, body, timestamp), secret, now=timestamp + skew)
    assert result.ok, result.reason
    assert result.secret_index == 0
    assert result.replay_key is not None
    assert result.signed_timestamp == (timestamp if scheme.timestamp_header else None)


@pytest.mark.parametrize("scheme", SCHEMES, ids=SCHEME_IDS)
@PROPERTY_SETTINGS
@given(secret=secrets_st, body=st.binary(min_size=1, max_size=2048), timestamp=timestamps_st,
       position=st.integers(min_value=0), bit=st.integers(min_value=0, max_value=7))
def test_body_bit_flip_fails(scheme: Scheme, secret: bytes, body: bytes, timestamp: int, position: int,
                             bit: int) -> None:
    headers = scheme.sign(secret, body, timestamp)
    position %= len(body)
    tampered = body[:position] + bytes([body[position] ^ (1 << bit)]) + body[position + 1:]
    assert not _verify(scheme, tampered, headers, secret, now=timestamp).ok


@pytest.mark.parametrize("scheme", SCHEMES, ids=SCHEME_IDS)
@PROPERTY_SETTINGS
@given(secret=secrets_st, body=bodies_st, timestamp=timestamps_st, position=st.integers(min_value=0),
       bit=st.integers(min_value=0, max_value=7))
def test_signature_bit_flip_fails(scheme: Scheme, secret: bytes, body: bytes, timestamp: int, position: int,
                                  bit: int) -> None:
    headers = scheme.sign(secret, body, timestamp)
    headers[scheme.signature_header] = _flip_char(headers[scheme.signature_header], position, bit)
    assert not _verify(scheme, body, headers, secret, now=timestamp).ok


@pytest.mark.parametrize("scheme", [s for s in SCHEMES if s.timestamp_header],
                         ids=[i for s, i in zip(SCHEMES, SCHEME_IDS, strict=True) if s.timestamp_header])
@PROPERTY_SETTINGS
@given(secret=secrets_st, body=bodies_st, timestamp=timestamps_st, position=st.integers(min_value=0),
       bit=st.integers(min_value=0, max_value=7))
def test_signed_timestamp_bit_flip_fails(scheme: Scheme, secret: bytes, body: bytes, timestamp: int, position: int,
                                         bit: int) -> None:
    assert scheme.timestamp_header is not None
    headers = scheme.sign(secret, body, timestamp)
    headers[scheme.timestamp_header] = _flip_char(headers[scheme.timestamp_header], position, bit)
    # Verify at the original time, so only the signature can reject the changed timestamp.
    assert not _verify(scheme, body, headers, secret, now=timestamp).ok


@PROPERTY_SETTINGS
@given(secret=secrets_st, body=bodies_st, timestamp=timestamps_st, position=st.integers(min_value=0),
       bit=st.integers(min_value=0, max_value=7))
def test_standard_message_id_bit_flip_fails(secret: bytes, body: bytes, timestamp: int, position: int,
                                           bit: int) -> None:
    scheme = SCHEMES[-1]
    headers = scheme.sign(secret, body, timestamp)
    headers["webhook-id"] = _flip_char(headers["webhook-id"], position, bit)
    assert not _verify(scheme, body, headers, secret, now=timestamp).ok


@pytest.mark.parametrize("scheme", SCHEMES, ids=SCHEME_IDS)
@PROPERTY_SETTINGS
@given(secret=secrets_st, other=secrets_st, body=bodies_st, timestamp=timestamps_st)
def test_signature_from_other_secret_fails(scheme: Scheme, secret: bytes, other: bytes, body: bytes,
                                           timestamp: int) -> None:
    if other == secret:
        other = secret + b"x"
    result = _verify(scheme, body, scheme.sign(other, body, timestamp), secret, now=timestamp)
    assert not result.ok
    assert result.reason == "bad_signature"


@pytest.mark.parametrize("scheme", SCHEMES, ids=SCHEME_IDS)
@PROPERTY_SETTINGS
@given(secret=secrets_st, body=bodies_st, timestamp=timestamps_st, upper=st.booleans())
def test_header_names_are_case_insensitive(scheme: Scheme, secret: bytes, body: bytes, timestamp: int,
                                           upper: bool) -> None:
    headers = {(name.upper() if upper else name.lower()): value
               for name, value in scheme.sign(secret, body, timestamp).items()}
    assert _verify(scheme, body, headers, secret, now=timestamp).ok
