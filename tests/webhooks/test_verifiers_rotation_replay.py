"""Secret rotation (which secret matched) and replay keys (derived only from signed content)."""
from __future__ import annotations

import base64
import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from webhooks.verifiers import get_verifier, sign_generic_hmac, sign_github, sign_slack, sign_standard_webhooks
from webhooks.verifiers.base import VerificationResult

TOLERANCE = 300
NOW = 1_700_000_000
CURRENT = b"current-secret"
PREVIOUS = b"previous-secret"
CURRENT_WHSEC = b"whsec_" + base64.b64encode(b"c" * 32)
PREVIOUS_WHSEC = b"whsec_" + base64.b64encode(b"p" * 32)
BODY = b'{"id":1}'
GENERIC = {"header": "X-Signature", "encoding": "base64", "timestamp_header": "X-Timestamp"}


def _verify(scheme: str, headers: dict[str, str], secrets: list[bytes], *, body: bytes = BODY,
            options: dict[str, str] | None = None, now: float = NOW) -> VerificationResult:
    return get_verifier(scheme).verify(body=body, headers=headers, secrets=secrets, options=options or {}, now=now,
                                       tolerance_seconds=TOLERANCE)


def _sign(scheme: str, secret: bytes, body: bytes = BODY) -> dict[str, str]:
    if scheme == "github":
        return sign_github(secret, body)
    if scheme == "slack":
        return sign_slack(secret, body, timestamp=NOW)
    if scheme == "generic_hmac":
        return sign_generic_hmac(secret, body, GENERIC, timestamp=NOW)
    return sign_standard_webhooks(secret, body, message_id="msg_rot", timestamp=NOW)


def _secrets(scheme: str) -> tuple[bytes, bytes]:
    return (CURRENT_WHSEC, PREVIOUS_WHSEC) if scheme == "standard_webhooks" else (CURRENT, PREVIOUS)


def _options(scheme: str) -> dict[str, str]:
    return GENERIC if scheme == "generic_hmac" else {}


SCHEMES = ["github", "slack", "generic_hmac", "standard_webhooks"]


@pytest.mark.parametrize("scheme", SCHEMES)
def test_current_secret_match_reports_index_zero(scheme: str) -> None:
    current, previous = _secrets(scheme)
    result = _verify(scheme, _sign(scheme, current), [current, previous], options=_options(scheme))
    assert result.ok
    assert result.secret_index == 0


@pytest.mark.parametrize("scheme", SCHEMES)
def test_previous_secret_match_reports_index_one(scheme: str) -> None:
    current, previous = _secrets(scheme)
    result = _verify(scheme, _sign(scheme, previous), [current, previous], options=_options(scheme))
    assert result.ok
    assert result.secret_index == 1


@pytest.mark.parametrize("scheme", SCHEMES)
def test_retired_secret_no_longer_verifies(scheme: str) -> None:
    current, previous = _secrets(scheme)
    result = _verify(scheme, _sign(scheme, previous), [current], options=_options(scheme))
    assert result.reason == "bad_signature"


@pytest.mark.parametrize("scheme", SCHEMES)
def test_index_counts_empty_slots(scheme: str) -> None:
    _, previous = _secrets(scheme)
    result = _verify(scheme, _sign(scheme, previous), [b"", previous], options=_options(scheme))
    assert result.secret_index == 1


def test_standard_header_signed_with_both_secrets_matches_current() -> None:
    headers = sign_standard_webhooks(CURRENT_WHSEC, BODY, message_id="msg_rot", timestamp=NOW,
                                     extra_secrets=[PREVIOUS_WHSEC])
    assert len(headers["webhook-signature"].split()) == 2
    assert _verify("standard_webhooks", headers, [CURRENT_WHSEC, PREVIOUS_WHSEC]).secret_index == 0
    # A receiver that has not yet learned the new secret still accepts it through the old one.
    assert _verify("standard_webhooks", headers, [PREVIOUS_WHSEC]).secret_index == 0
    assert _verify("standard_webhooks", headers, [b"whsec_" + base64.b64encode(b"x" * 32), PREVIOUS_WHSEC]
                   ).secret_index == 1


def test_standard_undecodable_secret_is_skipped_but_keeps_indexes() -> None:
    headers = sign_standard_webhooks(PREVIOUS_WHSEC, BODY, message_id="msg_rot", timestamp=NOW)
    result = _verify("standard_webhooks", headers, [b"whsec_***", PREVIOUS_WHSEC])
    assert result.ok
    assert result.secret_index == 1


def test_slack_retry_with_new_timestamp_has_same_replay_key() -> None:
    first = _verify("slack", sign_slack(CURRENT, BODY, timestamp=NOW), [CURRENT])
    retry_headers = {**sign_slack(CURRENT, BODY, timestamp=NOW + 60), "X-Slack-Retry-Num": "1",
                     "X-Slack-Retry-Reason": "http_timeout"}
    retry = _verify("slack", retry_headers, [CURRENT], now=NOW + 60)
    assert first.ok and retry.ok
    assert first.signed_timestamp != retry.signed_timestamp
    assert first.replay_key == retry.replay_key


def test_github_redelivery_with_new_delivery_id_has_same_replay_key() -> None:
    first = _verify("github", sign_github(CURRENT, BODY, event="push", delivery="guid-1"), [CURRENT])
    again = _verify("github", sign_github(CURRENT, BODY, event="push", delivery="guid-2"), [CURRENT])
    assert first.ok and again.ok
    assert first.unsigned_delivery_id != again.unsigned_delivery_id
    assert first.replay_key == again.replay_key


def test_github_unsigned_event_header_does_not_change_replay_key() -> None:
    first = _verify("github", sign_github(CURRENT, BODY, event="push"), [CURRENT])
    relabelled = _verify("github", sign_github(CURRENT, BODY, event="issues"), [CURRENT])
    assert first.replay_key == relabelled.replay_key


def test_generic_retry_with_new_timestamp_has_same_replay_key() -> None:
    first = _verify("generic_hmac", sign_generic_hmac(CURRENT, BODY, GENERIC, timestamp=NOW), [CURRENT],
                    options=GENERIC)
    retry = _verify("generic_hmac", sign_generic_hmac(CURRENT, BODY, GENERIC, timestamp=NOW + 30), [CURRENT],
                    options=GENERIC, now=NOW + 30)
    assert first.replay_key == retry.replay_key


def test_standard_retry_keeps_key_and_new_message_id_changes_it() -> None:
    def key(message_id: str, timestamp: int) -> str | None:
        headers = sign_standard_webhooks(CURRENT_WHSEC, BODY, message_id=message_id, timestamp=timestamp)
        return _verify("standard_webhooks", headers, [CURRENT_WHSEC], now=timestamp).replay_key

    assert key("msg_a", NOW) == key("msg_a", NOW + 120)
    assert key("msg_a", NOW) != key("msg_b", NOW)


def test_replay_key_is_the_documented_formula() -> None:
    github = _verify("github", sign_github(CURRENT, BODY), [CURRENT])
    assert github.replay_key == hashlib.sha256(BODY).hexdigest()
    headers = sign_standard_webhooks(CURRENT_WHSEC, BODY, message_id="msg_rot", timestamp=NOW)
    standard = _verify("standard_webhooks", headers, [CURRENT_WHSEC])
    assert standard.replay_key == hashlib.sha256(b"7:msg_rot" + BODY).hexdigest()


def test_standard_replay_key_does_not_collide_across_id_body_split() -> None:
    # ("msg_a", b"b...") and ("msg_ab", b"...") concatenate to the same bytes; the length prefix separates them.
    first = sign_standard_webhooks(CURRENT_WHSEC, b"b{}", message_id="msg_a", timestamp=NOW)
    second = sign_standard_webhooks(CURRENT_WHSEC, b"{}", message_id="msg_ab", timestamp=NOW)
    key_a = _verify("standard_webhooks", first, [CURRENT_WHSEC], body=b"b{}").replay_key
    key_b = _verify("standard_webhooks", second, [CURRENT_WHSEC], body=b"{}").replay_key
    assert key_a is not None and key_b is not None
    assert key_a != key_b


@pytest.mark.parametrize("scheme", SCHEMES)
@settings(max_examples=100, deadline=None)
@given(first=st.binary(max_size=512), second=st.binary(max_size=512))
def test_different_bodies_have_different_replay_keys(scheme: str, first: bytes, second: bytes) -> None:
    current, _ = _secrets(scheme)
    key_first = _verify(scheme, _sign(scheme, current, first), [current], body=first,
                        options=_options(scheme)).replay_key
    key_second = _verify(scheme, _sign(scheme, current, second), [current], body=second,
                         options=_options(scheme)).replay_key
    assert key_first is not None and key_second is not None
    assert (key_first == key_second) == (first == second)
