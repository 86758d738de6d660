"""The scheme registry and the generic HMAC option validation the connection type relies on."""
from __future__ import annotations

import base64

import pytest

from webhooks.verifiers import (
    VERIFIERS,
    GenericHmacOptions,
    Verifier,
    decode_standard_secret,
    generate_standard_secret,
    get_verifier,
    sign_generic_hmac,
)


def test_registry_holds_the_four_schemes_under_their_own_names() -> None:
    assert set(VERIFIERS) == {"github", "slack", "generic_hmac", "standard_webhooks"}
    for name, verifier in VERIFIERS.items():
        assert verifier.scheme == name
        assert isinstance(verifier, Verifier)
        assert get_verifier(name) is verifier


def test_unknown_scheme_raises_key_error() -> None:
    with pytest.raises(KeyError, match="stripe"):
        get_verifier("stripe")


def test_registry_is_read_only() -> None:
    with pytest.raises(TypeError):
        VERIFIERS["evil"] = VERIFIERS["github"]  # type: ignore[index]


def test_generic_options_defaults() -> None:
    options = GenericHmacOptions.from_mapping({"header": "X-Signature"})
    assert options.as_dict() == {"header": "X-Signature", "prefix": "", "encoding": "hex",
                                 "timestamp_header": None, "event_header": None}


@pytest.mark.parametrize(("options", "message"), [
    ({}, "header"),
    ({"header": "X Signature"}, "header"),
    ({"header": "X-Signature", "encoding": "base32"}, "encoding"),
    ({"header": "X-Signature", "prefix": " sha256="}, "prefix"),
    ({"header": "X-Signature", "prefix": 5}, "prefix"),
    ({"header": "X-Signature", "timestamp_header": "x-signature"}, "differ"),
    ({"header": "X-Signature", "timestamp_header": "bad header"}, "timestamp_header"),
    ({"header": "X-Signature", "timestamp_heder": "X-Timestamp"}, "timestamp_heder"),
])
def test_invalid_generic_options_are_refused_naming_the_key(options: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        GenericHmacOptions.from_mapping(options)


def test_generic_event_header_is_reported() -> None:
    options = {"header": "X-Signature", "event_header": "X-Event-Type"}
    headers = {**sign_generic_hmac(b"k", b"{}", options), "X-Event-Type": "order.paid"}
    result = get_verifier("generic_hmac").verify(body=b"{}", headers=headers, secrets=[b"k"], options=options, now=0,
                                                 tolerance_seconds=0)
    assert result.ok
    assert result.event_name == "order.paid"


def test_decode_standard_secret_accepts_prefixed_bare_and_unpadded_forms() -> None:
    key = bytes(range(25))  # 25 bytes: its base64 needs padding
    encoded = base64.b64encode(key)
    assert decode_standard_secret(b"whsec_" + encoded) == key
    assert decode_standard_secret(encoded) == key
    assert decode_standard_secret(b"whsec_" + encoded.rstrip(b"=")) == key
    assert decode_standard_secret("whsec_" + encoded.decode()) == key


@pytest.mark.parametrize("bad", [b"whsec_", b"whsec_@@@@", b"whsec_A", b""])
def test_decode_standard_secret_refuses_unusable_secrets(bad: bytes) -> None:
    with pytest.raises(ValueError) as excinfo:
        decode_standard_secret(bad)
    # Fixed sentences only: the (possibly almost right) secret is never echoed back.
    assert str(excinfo.value) in {"the signing secret is not valid base64", "the signing secret is empty"}


def test_generated_standard_secret_round_trips() -> None:
    secret = generate_standard_secret()
    assert secret.startswith("whsec_")
    assert len(decode_standard_secret(secret)) == 32
    assert generate_standard_secret() != secret
    with pytest.raises(ValueError):
        generate_standard_secret(16)
