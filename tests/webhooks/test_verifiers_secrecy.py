"""Nothing secret leaves a verifier: not in results, logs or exceptions."""
from __future__ import annotations

import base64
import hashlib
import hmac
import logging

import pytest

from webhooks.verifiers import get_verifier, sign_github, sign_standard_webhooks

SECRET = b"TOP-SECRET-VALUE-1234567890"
BODY = b'{"hello":"world"}'


def _expected_hex() -> str:
    return hmac.new(SECRET, BODY, hashlib.sha256).hexdigest()


def test_failed_result_carries_neither_secret_nor_expected_signature(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    forged = sign_github(b"attacker", BODY)
    result = get_verifier("github").verify(body=BODY, headers=forged, secrets=[SECRET], options={}, now=0,
                                           tolerance_seconds=0)
    assert result.reason == "bad_signature"
    text = repr(result) + caplog.text
    assert SECRET.decode() not in text
    assert _expected_hex() not in text


def test_misconfigured_generic_options_log_without_secret(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    result = get_verifier("generic_hmac").verify(body=BODY, headers={"X-Signature": "00"}, secrets=[SECRET],
                                                 options={"header": "X-Signature", "encoding": "rot13"}, now=0,
                                                 tolerance_seconds=0)
    assert result.reason == "misconfigured"
    assert "encoding" in caplog.text
    assert SECRET.decode() not in caplog.text + repr(result)


def test_undecodable_standard_secret_logs_its_index_not_its_value(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    bad_secret = b"whsec_SECRET*VALUE"
    good_secret = b"whsec_" + base64.b64encode(b"g" * 24)
    headers = sign_standard_webhooks(good_secret, BODY, message_id="msg_1", timestamp=100)
    result = get_verifier("standard_webhooks").verify(body=BODY, headers=headers, secrets=[bad_secret, good_secret],
                                                      options={}, now=100, tolerance_seconds=0)
    assert result.ok
    assert "#0" in caplog.text
    assert "SECRET*VALUE" not in caplog.text + repr(result)
