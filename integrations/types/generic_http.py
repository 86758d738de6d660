from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from integrations.types.base import ConnectionType, FieldSpec, header_name, https_url_unless_loopback
from integrations.types.http_probe import result_for_error
from integrations.types.probing import HealthResult, ProbeContext, healthy
from synthorg.http import ExternalServiceError, http_request

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


# Servers that do not implement HEAD answer one of these; GET is then the check.
HEAD_NOT_SUPPORTED = (405, 501)


def auth_headers(values: Mapping[str, Any]) -> dict[str, str]:
    """The connection's own auth header, as its clients send it."""
    header = str(values.get("auth_header") or "Authorization")
    if values.get("token"):
        scheme = str(values.get("auth_scheme") if values.get("auth_scheme") is not None else "Bearer").strip()
        return {header: f"{scheme} {values['token']}" if scheme else str(values["token"])}
    if values.get("api_key"):
        return {header: str(values["api_key"])}
    return {}


def probe(context: ProbeContext) -> HealthResult:
    url = str(context.values["base_url"])
    headers = auth_headers(context.values)
    method = "HEAD"
    try:
        try:
            # require_tls: a row stored before the https rule is refused here, nothing sent.
            response = http_request("HEAD", url, timeout=context.http_timeout, headers=headers,
                                    connection_id=context.connection_id, require_tls=True)
        except ExternalServiceError as exc:
            if exc.status not in HEAD_NOT_SUPPORTED:
                raise
            method = "GET"
            response = http_request("GET", url, timeout=context.http_timeout, headers=headers,
                                    max_bytes=256 * 1024, connection_id=context.connection_id, require_tls=True)
    except ExternalServiceError as exc:
        return result_for_error(exc)
    if 300 <= response.status_code < 400:
        # Redirects are never followed (the auth header would go to a host nobody chose).
        return healthy(f"{method}: HTTP {response.status_code} (redirect not followed)")
    return healthy(f"{method}: HTTP {response.status_code}")


CONNECTION_TYPE = ConnectionType(
    name="generic_http",
    label="Generic HTTP",
    description="Any HTTP API: a base URL, a bearer token or API key, and optional webhook signing.",
    webhook_scheme="generic_hmac",
    fields=(
        # The token/api key goes to this URL: https, plain http only to loopback (issue 12 §2).
        FieldSpec("base_url", kind="url", required=True, validators=(https_url_unless_loopback,),
                  help="https:// (plain http:// only to a loopback host)"),
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
    probe=probe,
    destination_fields=("base_url", "auth_header", "auth_scheme"),
)
