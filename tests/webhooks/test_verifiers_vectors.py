"""Published test vectors: GitHub's and Slack's documentation, the Standard Webhooks reference tests."""
from __future__ import annotations

import base64
import hashlib
import hmac

from webhooks.verifiers import get_verifier, sign_generic_hmac, sign_github, sign_slack, sign_standard_webhooks
from webhooks.verifiers.base import BAD_SIGNATURE

# https://docs.github.com/webhooks/using-webhooks/validating-webhook-deliveries ("Testing the
# webhook payload validation").
GITHUB_SECRET = b"It's a Secret to Everybody"
GITHUB_BODY = b"Hello, World!"
GITHUB_HEX = "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"

# https://api.slack.com/authentication/verifying-requests-from-slack (step-by-step walk-through).
SLACK_SECRET = b"8f742231b10e8888abcd99yyyzzz85a5"
SLACK_TIMESTAMP = 1531420618
SLACK_BODY = (
    b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V"
    b"&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text="
    b"&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN"
    b"&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
)
SLACK_SIGNATURE = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"

# standard-webhooks/standard-webhooks libraries/python/tests/test_webhooks.py (test_sign_function,
# test_invalid_signature_raises_error, test_multi_sig_payload_is_valid).
STANDARD_SECRET = b"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
STANDARD_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
STANDARD_TIMESTAMP = 1614265330
STANDARD_BODY = b'{"test": 2432232314}'
STANDARD_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
STANDARD_WRONG_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OA="
STANDARD_DECOY = "Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc="

TOLERANCE = 300


def _verify(scheme: str, body: bytes, headers: dict[str, str], secret: bytes, now: float, **options: object):
    return get_verifier(scheme).verify(body=body, headers=headers, secrets=[secret], options=options, now=now,
                                       tolerance_seconds=TOLERANCE)


def test_github_documented_vector_verifies() -> None:
    headers = {"X-Hub-Signature-256": "sha256=" + GITHUB_HEX, "X-GitHub-Event": "ping",
               "X-GitHub-Delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958"}
    result = _verify("github", GITHUB_BODY, headers, GITHUB_SECRET, now=0)
    assert result.ok, result.reason
    assert result.secret_index == 0
    assert result.event_name == "ping"
    assert result.unsigned_delivery_id == "72d3162e-cc78-11e3-81ab-4c9367dc0958"
    assert result.message_id is None  # the delivery id is not signed, so it is never reported as one
    assert result.replay_key == hashlib.sha256(GITHUB_BODY).hexdigest()


def test_github_signer_reproduces_documented_vector() -> None:
    assert sign_github(GITHUB_SECRET, GITHUB_BODY)["X-Hub-Signature-256"] == "sha256=" + GITHUB_HEX


def test_github_documented_vector_with_changed_body_fails() -> None:
    result = _verify("github", b"Hello, World?", {"X-Hub-Signature-256": "sha256=" + GITHUB_HEX}, GITHUB_SECRET, 0)
    assert not result.ok
    assert result.reason == BAD_SIGNATURE


def test_slack_documented_vector_verifies() -> None:
    headers = {"X-Slack-Request-Timestamp": str(SLACK_TIMESTAMP), "X-Slack-Signature": SLACK_SIGNATURE}
    result = _verify("slack", SLACK_BODY, headers, SLACK_SECRET, now=SLACK_TIMESTAMP + 5)
    assert result.ok, result.reason
    assert result.signed_timestamp == SLACK_TIMESTAMP
    assert result.replay_key == hashlib.sha256(SLACK_BODY).hexdigest()


def test_slack_signer_reproduces_documented_vector() -> None:
    headers = sign_slack(SLACK_SECRET, SLACK_BODY, timestamp=SLACK_TIMESTAMP)
    assert headers == {"X-Slack-Request-Timestamp": str(SLACK_TIMESTAMP), "X-Slack-Signature": SLACK_SIGNATURE}


def test_slack_documented_vector_with_wrong_secret_fails() -> None:
    headers = {"X-Slack-Request-Timestamp": str(SLACK_TIMESTAMP), "X-Slack-Signature": SLACK_SIGNATURE}
    result = _verify("slack", SLACK_BODY, headers, b"bogus", now=SLACK_TIMESTAMP)
    assert result.reason == BAD_SIGNATURE


def _standard_headers(signature: str) -> dict[str, str]:
    return {"webhook-id": STANDARD_ID, "webhook-timestamp": str(STANDARD_TIMESTAMP), "webhook-signature": signature}


def test_standard_reference_vector_verifies() -> None:
    result = _verify("standard_webhooks", STANDARD_BODY, _standard_headers(STANDARD_SIGNATURE), STANDARD_SECRET,
                     now=STANDARD_TIMESTAMP)
    assert result.ok, result.reason
    assert result.message_id == STANDARD_ID
    assert result.signed_timestamp == STANDARD_TIMESTAMP


def test_standard_reference_vector_with_bare_base64_secret_verifies() -> None:
    bare = STANDARD_SECRET.removeprefix(b"whsec_")
    result = _verify("standard_webhooks", STANDARD_BODY, _standard_headers(STANDARD_SIGNATURE), bare,
                     now=STANDARD_TIMESTAMP)
    assert result.ok, result.reason


def test_standard_signer_reproduces_reference_vector() -> None:
    headers = sign_standard_webhooks(STANDARD_SECRET, STANDARD_BODY, message_id=STANDARD_ID,
                                     timestamp=STANDARD_TIMESTAMP)
    assert headers == _standard_headers(STANDARD_SIGNATURE)


def test_standard_reference_wrong_signature_fails() -> None:
    result = _verify("standard_webhooks", STANDARD_BODY, _standard_headers(STANDARD_WRONG_SIGNATURE),
                     STANDARD_SECRET, now=STANDARD_TIMESTAMP)
    assert result.reason == BAD_SIGNATURE


def test_standard_reference_multi_signature_header_verifies() -> None:
    header = " ".join(["v1," + STANDARD_DECOY, "v2," + STANDARD_DECOY, STANDARD_SIGNATURE, "v1," + STANDARD_DECOY])
    result = _verify("standard_webhooks", STANDARD_BODY, _standard_headers(header), STANDARD_SECRET,
                     now=STANDARD_TIMESTAMP)
    assert result.ok, result.reason


def test_standard_reference_decoys_alone_fail() -> None:
    header = " ".join(["v1," + STANDARD_DECOY, "v2," + STANDARD_SIGNATURE.removeprefix("v1,")])
    result = _verify("standard_webhooks", STANDARD_BODY, _standard_headers(header), STANDARD_SECRET,
                     now=STANDARD_TIMESTAMP)
    assert result.reason == BAD_SIGNATURE


def test_generic_hex_with_github_prefix_matches_github_vector() -> None:
    # Without a timestamp the generic construction IS GitHub's, so GitHub's published vector applies.
    options = {"header": "X-Signature", "prefix": "sha256=", "encoding": "hex"}
    result = _verify("generic_hmac", GITHUB_BODY, {"X-Signature": "sha256=" + GITHUB_HEX}, GITHUB_SECRET, 0, **options)
    assert result.ok, result.reason
    assert sign_generic_hmac(GITHUB_SECRET, GITHUB_BODY, options) == {"X-Signature": "sha256=" + GITHUB_HEX}


def test_generic_base64_matches_github_vector_reencoded() -> None:
    encoded = base64.b64encode(bytes.fromhex(GITHUB_HEX)).decode()
    options = {"header": "X-Signature", "encoding": "base64"}
    result = _verify("generic_hmac", GITHUB_BODY, {"X-Signature": encoded}, GITHUB_SECRET, 0, **options)
    assert result.ok, result.reason


def test_generic_timestamp_mode_signs_timestamp_dot_body() -> None:
    # The documented rule, restated independently of the module: HMAC(secret, b"<ts>." + body).
    timestamp = 1700000000
    expected = hmac.new(GITHUB_SECRET, b"1700000000." + GITHUB_BODY, hashlib.sha256).hexdigest()
    options = {"header": "X-Signature", "timestamp_header": "X-Timestamp"}
    headers = {"X-Signature": expected, "X-Timestamp": str(timestamp)}
    result = _verify("generic_hmac", GITHUB_BODY, headers, GITHUB_SECRET, timestamp, **options)
    assert result.ok, result.reason
    assert result.signed_timestamp == timestamp
    assert sign_generic_hmac(GITHUB_SECRET, GITHUB_BODY, options, timestamp=timestamp) == headers
