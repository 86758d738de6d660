"""Signed timestamps must fall inside [now - tolerance, now + tolerance]; a valid signature is checked first."""
from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from webhooks.verifiers import get_verifier, sign_generic_hmac, sign_github, sign_slack, sign_standard_webhooks
from webhooks.verifiers.base import VerificationResult

TOLERANCE = 300
SECRET = b"s3cret-signing-key"
WHSEC = b"whsec_" + base64.b64encode(b"\x01" * 24)
BODY = b'{"event":"thing.happened"}'
SIGNED_AT = 1_700_000_000
GENERIC = {"header": "X-Signature", "timestamp_header": "X-Timestamp"}


def _signed(scheme: str) -> tuple[dict[str, str], bytes, dict[str, str]]:
    """(headers signed at SIGNED_AT, secret, options) for a scheme that signs a timestamp."""
    if scheme == "slack":
        return sign_slack(SECRET, BODY, timestamp=SIGNED_AT), SECRET, {}
    if scheme == "standard_webhooks":
        return sign_standard_webhooks(WHSEC, BODY, message_id="msg_fresh", timestamp=SIGNED_AT), WHSEC, {}
    return sign_generic_hmac(SECRET, BODY, GENERIC, timestamp=SIGNED_AT), SECRET, GENERIC


def _verify_at(scheme: str, now: float, *, tolerance: int = TOLERANCE) -> VerificationResult:
    headers, secret, options = _signed(scheme)
    return get_verifier(scheme).verify(body=BODY, headers=headers, secrets=[secret], options=options, now=now,
                                       tolerance_seconds=tolerance)


TIMESTAMPED = ["slack", "standard_webhooks", "generic_hmac"]


@pytest.mark.parametrize("scheme", TIMESTAMPED)
def test_timestamp_exactly_at_window_edges_verifies(scheme: str) -> None:
    assert _verify_at(scheme, SIGNED_AT + TOLERANCE).ok
    assert _verify_at(scheme, SIGNED_AT - TOLERANCE).ok


@pytest.mark.parametrize("scheme", TIMESTAMPED)
def test_timestamp_older_than_window_is_stale(scheme: str) -> None:
    result = _verify_at(scheme, SIGNED_AT + TOLERANCE + 1)
    assert not result.ok
    assert result.reason == "stale_timestamp"
    # The signature itself was genuine: the log can tell a replay from a forgery.
    assert result.secret_index == 0
    assert result.signed_timestamp == SIGNED_AT
    assert result.replay_key is None


@pytest.mark.parametrize("scheme", TIMESTAMPED)
def test_timestamp_ahead_of_window_is_future(scheme: str) -> None:
    result = _verify_at(scheme, SIGNED_AT - TOLERANCE - 0.5)
    assert not result.ok
    assert result.reason == "future_timestamp"


@pytest.mark.parametrize("scheme", TIMESTAMPED)
def test_zero_tolerance_accepts_only_the_signing_second(scheme: str) -> None:
    assert _verify_at(scheme, SIGNED_AT, tolerance=0).ok
    assert _verify_at(scheme, SIGNED_AT + 1, tolerance=0).reason == "stale_timestamp"


@pytest.mark.parametrize("scheme", TIMESTAMPED)
def test_stale_forgery_reports_bad_signature_not_staleness(scheme: str) -> None:
    headers, secret, options = _signed(scheme)
    result = get_verifier(scheme).verify(body=BODY + b" ", headers=headers, secrets=[secret], options=options,
                                         now=SIGNED_AT + 10 * TOLERANCE, tolerance_seconds=TOLERANCE)
    assert result.reason == "bad_signature"
    assert result.secret_index is None


@pytest.mark.parametrize("scheme", TIMESTAMPED)
@settings(max_examples=150, deadline=None)
@given(offset=st.integers(min_value=-10 * TOLERANCE, max_value=10 * TOLERANCE))
def test_freshness_matches_window_rule(scheme: str, offset: int) -> None:
    result = _verify_at(scheme, SIGNED_AT + offset)
    if abs(offset) <= TOLERANCE:
        assert result.ok, result.reason
    else:
        assert result.reason == ("stale_timestamp" if offset > 0 else "future_timestamp")


def test_github_has_no_signed_timestamp_and_ignores_the_clock() -> None:
    headers = sign_github(SECRET, BODY)
    for now in (0.0, float(SIGNED_AT), 1e12):
        result = get_verifier("github").verify(body=BODY, headers=headers, secrets=[SECRET], options={}, now=now,
                                               tolerance_seconds=TOLERANCE)
        assert result.ok
        assert result.signed_timestamp is None


def test_generic_without_timestamp_header_ignores_the_clock() -> None:
    options = {"header": "X-Signature"}
    headers = sign_generic_hmac(SECRET, BODY, options)
    result = get_verifier("generic_hmac").verify(body=BODY, headers={**headers, "X-Timestamp": "1"}, secrets=[SECRET],
                                                 options=options, now=1e12, tolerance_seconds=TOLERANCE)
    assert result.ok
    assert result.signed_timestamp is None
