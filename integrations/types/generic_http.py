from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from integrations.types.base import ConnectionType, FieldSpec, header_name, http_url

SIGNATURE_ENCODINGS = ("hex", "base64")
SIGNATURE_SCHEMES = ("generic_hmac", "standard_webhooks")


def _rules(values: Mapping[str, Any]) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    if values.get("token") and values.get("api_key"):
        errors["api_key"] = ["give either token or api_key, not both"]
    if values.get("signature_scheme") == "standard_webhooks":
        secret = values.get("signing_secret")
        if secret and not str(secret).startswith("whsec_"):
            errors.setdefault("signing_secret", []).append("a Standard Webhooks secret starts with whsec_")
    return errors


CONNECTION_TYPE = ConnectionType(
    name="generic_http",
    label="Generic HTTP",
    description="Any HTTP API: a base URL, a bearer token or API key, and optional webhook signing.",
    webhook_scheme="generic_hmac",
    fields=(
        FieldSpec("base_url", kind="url", required=True, validators=(http_url,)),
        FieldSpec("token", secret=True, help="sent as `<auth_scheme> <token>` in auth_header"),
        FieldSpec("api_key", secret=True, help="sent as the raw value of auth_header"),
        FieldSpec("auth_header", default="Authorization", validators=(header_name,)),
        FieldSpec("auth_scheme", default="Bearer", help="prefix before the token; empty for none"),
        FieldSpec("signature_scheme", default="generic_hmac", choices=SIGNATURE_SCHEMES,
                  help="generic_hmac (settings below) or standard_webhooks"),
        FieldSpec("signing_secret", secret=True, help="webhook HMAC secret (whsec_... for standard_webhooks)"),
        FieldSpec("signature_header", default="X-Signature", validators=(header_name,)),
        FieldSpec("signature_prefix", default="", help="e.g. sha256="),
        FieldSpec("signature_encoding", default="hex", choices=SIGNATURE_ENCODINGS),
        FieldSpec("timestamp_header", validators=(header_name,),
                  help="optional signed timestamp header; then the signed message is `<timestamp>.<body>`"),
        FieldSpec("event_header", validators=(header_name,), help="optional header naming the event"),
    ),
    rules=_rules,
)
