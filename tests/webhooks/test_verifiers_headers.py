"""Missing, malformed and ambiguous headers give a stable reason, never an exception."""
from __future__ import annotations

import base64

import pytest
from django.http.request import HttpHeaders

from webhooks.verifiers import get_verifier, sign_generic_hmac, sign_github, sign_slack, sign_standard_webhooks
from webhooks.verifiers.base import VerificationResult

NOW = 1_700_000_000
TOLERANCE = 300
SECRET = b"correct horse battery staple"
WHSEC = b"whsec_" + base64.b64encode(b"k" * 32)
BODY = b'{"action":"opened","number":7}'
GENERIC = {"header": "X-Signature", "prefix": "sha256=", "timestamp_header": "X-Timestamp"}


def _verify(scheme: str, headers: object, *, secret: bytes = SECRET, body: bytes = BODY,
            options: dict[str, object] | None = None) -> VerificationResult:
    return get_verifier(scheme).verify(body=body, headers=headers, secrets=[secret], options=options or {},
                                       now=NOW, tolerance_seconds=TOLERANCE)


def _without(headers: dict[str, str], name: str) -> dict[str, str]:
    return {key: value for key, value in headers.items() if key != name}


def _replace(headers: dict[str, str], name: str, value: str) -> dict[str, str]:
    return {**headers, name: value}


GITHUB = sign_github(SECRET, BODY)
SLACK = sign_slack(SECRET, BODY, timestamp=NOW)
STANDARD = sign_standard_webhooks(WHSEC, BODY, message_id="msg_1", timestamp=NOW)
GENERIC_HEADERS = sign_generic_hmac(SECRET, BODY, GENERIC, timestamp=NOW)

CASES = [
    # (scheme, headers, secret, options, expected reason)
    ("github", _without(GITHUB, "X-Hub-Signature-256"), SECRET, None, "missing_signature"),
    ("github", _replace(GITHUB, "X-Hub-Signature-256", "   "), SECRET, None, "missing_signature"),
    ("github", _replace(GITHUB, "X-Hub-Signature-256", "sha1=" + "0" * 40), SECRET, None, "malformed_header"),
    ("github", _replace(GITHUB, "X-Hub-Signature-256", GITHUB["X-Hub-Signature-256"][7:]), SECRET, None,
     "malformed_header"),
    ("github", _replace(GITHUB, "X-Hub-Signature-256", GITHUB["X-Hub-Signature-256"].upper()), SECRET, None,
     "malformed_header"),
    ("github", _replace(GITHUB, "X-Hub-Signature-256", GITHUB["X-Hub-Signature-256"] + "00"), SECRET, None,
     "malformed_header"),
    ("github", _replace(GITHUB, "X-Hub-Signature-256", "sha256=" + "é" * 64), SECRET, None, "malformed_header"),
    ("slack", _without(SLACK, "X-Slack-Signature"), SECRET, None, "missing_signature"),
    ("slack", _without(SLACK, "X-Slack-Request-Timestamp"), SECRET, None, "missing_timestamp"),
    ("slack", _replace(SLACK, "X-Slack-Request-Timestamp", "1700000000.5"), SECRET, None, "malformed_timestamp"),
    ("slack", _replace(SLACK, "X-Slack-Request-Timestamp", "-1700000000"), SECRET, None, "malformed_timestamp"),
    ("slack", _replace(SLACK, "X-Slack-Request-Timestamp", "1e9"), SECRET, None, "malformed_timestamp"),
    ("slack", _replace(SLACK, "X-Slack-Request-Timestamp", "1_700_000_000"), SECRET, None, "malformed_timestamp"),
    ("slack", _replace(SLACK, "X-Slack-Request-Timestamp", "\u0661\u0667" + "\u0660" * 8), SECRET, None, "malformed_timestamp"),
    ("slack", _replace(SLACK, "X-Slack-Signature", "v1=" + SLACK["X-Slack-Signature"][3:]), SECRET, None,
     "malformed_header"),
    ("standard_webhooks", _without(STANDARD, "webhook-id"), WHSEC, None, "missing_message_id"),
    ("standard_webhooks", _without(STANDARD, "webhook-timestamp"), WHSEC, None, "missing_timestamp"),
    ("standard_webhooks", _without(STANDARD, "webhook-signature"), WHSEC, None, "missing_signature"),
    ("standard_webhooks", _replace(STANDARD, "webhook-timestamp", "hello"), WHSEC, None, "malformed_timestamp"),
    # The spec forbids "." in the id: it would let the id/timestamp/body boundaries move.
    ("standard_webhooks", _replace(STANDARD, "webhook-id", "msg.1"), WHSEC, None, "malformed_header"),
    ("standard_webhooks", _replace(STANDARD, "webhook-id", "m" * 257), WHSEC, None, "malformed_header"),
    ("standard_webhooks", _replace(STANDARD, "webhook-signature", "garbage"), WHSEC, None, "malformed_header"),
    ("standard_webhooks", _replace(STANDARD, "webhook-signature", "v1a,AAAA v2,BBBB"), WHSEC, None,
     "unsupported_signature_version"),
    ("standard_webhooks", STANDARD, b"whsec_not*base64", None, "misconfigured"),
    ("generic_hmac", _without(GENERIC_HEADERS, "X-Signature"), SECRET, GENERIC, "missing_signature"),
    ("generic_hmac", _without(GENERIC_HEADERS, "X-Timestamp"), SECRET, GENERIC, "missing_timestamp"),
    ("generic_hmac", _replace(GENERIC_HEADERS, "X-Timestamp", "soon"), SECRET, GENERIC, "malformed_timestamp"),
    ("generic_hmac", _replace(GENERIC_HEADERS, "X-Signature", GENERIC_HEADERS["X-Signature"][7:]), SECRET, GENERIC,
     "malformed_header"),
    ("generic_hmac", GENERIC_HEADERS, SECRET, {**GENERIC, "timestamp_heder": "X-Timestamp"}, "misconfigured"),
    ("generic_hmac", GENERIC_HEADERS, SECRET, {"prefix": "sha256="}, "misconfigured"),
]


@pytest.mark.parametrize(("scheme", "headers", "secret", "options", "reason"), CASES,
                         ids=[f"{case[0]}-{case[4]}-{index}" for index, case in enumerate(CASES)])
def test_bad_header_gives_stable_reason(scheme: str, headers: dict[str, str], secret: bytes,
                                        options: dict[str, object] | None, reason: str) -> None:
    result = _verify(scheme, headers, secret=secret, options=options)
    assert not result.ok
    assert result.reason == reason
    assert result.replay_key is None


@pytest.mark.parametrize("scheme", ["github", "slack", "standard_webhooks", "generic_hmac"])
def test_no_usable_secret_is_no_secret(scheme: str) -> None:
    headers = {"github": GITHUB, "slack": SLACK, "standard_webhooks": STANDARD, "generic_hmac": GENERIC_HEADERS}[scheme]
    for secrets in ([], [b""], [b"", b""]):
        result = get_verifier(scheme).verify(body=BODY, headers=headers, secrets=secrets, options=GENERIC
                                             if scheme == "generic_hmac" else {}, now=NOW, tolerance_seconds=TOLERANCE)
        assert result.reason == "no_secret"


def test_empty_secret_never_verifies_signature_made_with_empty_key() -> None:
    # Anyone can compute HMAC with an empty key; an unset secret slot must not accept it.
    forged = sign_github(b"", BODY)
    result = get_verifier("github").verify(body=BODY, headers=forged, secrets=[b"", SECRET], options={}, now=NOW,
                                           tolerance_seconds=TOLERANCE)
    assert result.reason == "bad_signature"


def test_conflicting_duplicate_header_names_are_malformed() -> None:
    other = sign_github(b"attacker", BODY)["X-Hub-Signature-256"]
    headers = {**GITHUB, "x-hub-signature-256": other}
    assert _verify("github", headers).reason == "malformed_header"


def test_identical_duplicate_header_names_verify() -> None:
    headers = {**GITHUB, "x-hub-signature-256": GITHUB["X-Hub-Signature-256"]}
    assert _verify("github", headers).ok


def test_surrounding_whitespace_in_header_values_is_ignored() -> None:
    headers = {name: f" {value}\t" for name, value in SLACK.items()}
    assert _verify("slack", headers).ok


def test_django_request_headers_are_accepted() -> None:
    meta = {"HTTP_X_HUB_SIGNATURE_256": GITHUB["X-Hub-Signature-256"], "HTTP_X_GITHUB_EVENT": "push",
            "CONTENT_TYPE": "application/json"}
    result = _verify("github", HttpHeaders(meta))
    assert result.ok, result.reason
    assert result.event_name == "push"


def test_standard_signature_list_with_extra_spaces_verifies() -> None:
    headers = _replace(STANDARD, "webhook-signature", "  v1a,AAAA   " + STANDARD["webhook-signature"] + "  ")
    assert _verify("standard_webhooks", headers, secret=WHSEC).ok


def test_non_ascii_standard_message_id_is_malformed() -> None:
    headers = _replace(STANDARD, "webhook-id", "msg_é")
    assert _verify("standard_webhooks", headers, secret=WHSEC).reason == "malformed_header"


def test_negative_tolerance_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="tolerance"):
        get_verifier("github").verify(body=BODY, headers=GITHUB, secrets=[SECRET], options={}, now=NOW,
                                      tolerance_seconds=-1)
