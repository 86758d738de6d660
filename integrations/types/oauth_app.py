from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from integrations.types.base import ConnectionType, FieldSpec, https_url_unless_loopback
from integrations.types.probing import UNKNOWN, HealthResult, ProbeContext, healthy, unhealthy

# The authorization request parameters the service sets itself (RFC 6749 §4.1.1, RFC 7636
# §4.3). Neither auth_url's own query nor extra_authorization_params may carry one (issue 12:
# a second redirect_uri or state ahead of ours is a provider's pick, and Redirect_URI got
# past a case-sensitive check). Compared case-insensitively: some providers are.
AUTHORIZATION_REQUEST_PARAMS = frozenset({
    "response_type", "client_id", "redirect_uri", "scope", "state", "code_challenge", "code_challenge_method",
})


def reserved_authorization_params(names: Iterable[str]) -> list[str]:
    """The names among ``names`` that the service sets itself, as given, in order."""
    return [name for name in names if name.strip().lower() in AUTHORIZATION_REQUEST_PARAMS]


def authorization_endpoint_url(value: Any) -> None:
    """An https URL (loopback http) whose query sets none of the parameters the service sends."""
    https_url_unless_loopback(value)
    names = [name for name, _ in parse_qsl(urlsplit(value).query, keep_blank_values=True)]
    reserved = reserved_authorization_params(names)
    if reserved:
        raise ValueError(f"must not carry {', '.join(sorted(set(reserved)))} in its query: the service sets "
                         "the authorization request's own parameters")


def no_reserved_params(value: Any) -> None:
    reserved = reserved_authorization_params(value)
    if reserved:
        raise ValueError(f"must not set {', '.join(sorted(reserved))}: the service sets "
                         f"{', '.join(sorted(AUTHORIZATION_REQUEST_PARAMS))} itself")


# Token states as oauthflow writes them (it is the only writer of token status).
HEALTHY_TOKEN_STATES = frozenset({"active", "refreshing", "valid"})
UNHEALTHY_TOKEN_STATES = frozenset({"reauthorization_required", "error", "expired", "revoked", "refresh_failed"})
NO_TOKEN_STATES = frozenset({"not_connected", ""})


def _status_reader() -> Callable[[Any], Any] | None:
    """oauthflow's read of a connection's token state, when oauthflow provides one.

    ``oauthflow.selectors.token_status(connection)`` if present, else its
    ``oauth_status(connection)`` document (the body of ``GET /api/v1/oauth/status/{name}``).
    Imported lazily: integrations must not depend on oauthflow at import time (imports flow
    one way), and the check reports ``unknown`` while oauthflow is absent.
    """
    try:
        selectors = importlib.import_module("oauthflow.selectors")
    except ImportError:
        return None
    for name in ("token_status", "oauth_status"):
        reader = getattr(selectors, name, None)
        if callable(reader):
            return reader
    return None


def _field(state: Any, name: str) -> Any:
    return state.get(name) if isinstance(state, dict) else getattr(state, name, None)


def probe(context: ProbeContext) -> HealthResult:
    """Not a network check: reports the state of the connection's OAuth token."""
    reader = _status_reader()
    if reader is None or context.connection is None:
        return HealthResult(UNKNOWN, "not applicable: token state is not available")
    state = reader(context.connection)
    status = str((state if isinstance(state, str) else _field(state, "status")) or "").lower()
    if state is None or status in NO_TOKEN_STATES:
        return HealthResult(UNKNOWN, "not applicable: no token has been obtained yet")
    error = None if isinstance(state, str) else _field(state, "last_error") or _field(state, "error")
    suffix = f": {str(error)[:200]}" if error else ""
    connected = True if isinstance(state, str) else _field(state, "connected")
    if status in UNHEALTHY_TOKEN_STATES or connected is False:
        label = status if status in UNHEALTHY_TOKEN_STATES else f"{status}, expired and not refreshable"
        return unhealthy(f"token {label}{suffix}")
    if status in HEALTHY_TOKEN_STATES:
        return healthy(f"token {status}")
    return HealthResult(UNKNOWN, f"token state {status}")


CONNECTION_TYPE = ConnectionType(
    name="oauth_app",
    label="OAuth app",
    description="An OAuth 2.1 client registered with a provider; tokens are obtained and refreshed by the service.",
    fields=(
        FieldSpec("client_id", required=True),
        FieldSpec("client_secret", required=True, secret=True),
        FieldSpec("auth_url", kind="url", validators=(authorization_endpoint_url,),
                  help="authorization endpoint (code flow)"),
        FieldSpec("token_url", kind="url", required=True, validators=(https_url_unless_loopback,)),
        FieldSpec("device_authorization_url", kind="url", validators=(https_url_unless_loopback,),
                  help="device authorization endpoint (device flow)"),
        FieldSpec("scopes", kind="list", default=[], help="default scopes"),
        FieldSpec("token_endpoint_auth_method", default="client_secret_basic",
                  choices=("client_secret_basic", "client_secret_post")),
        FieldSpec("extra_authorization_params", kind="mapping", default={}, validators=(no_reserved_params,),
                  help="e.g. {\"prompt\": \"consent\", \"access_type\": \"offline\"}"),
        FieldSpec("issuer", kind="url", validators=(https_url_unless_loopback,),
                  help="the provider's issuer identifier, checked against `iss` (RFC 9207); "
                       "default: the origin of auth_url"),
        FieldSpec("pkce", kind="boolean", default=True,
                  help="may be false only when integrations.oauth.pkce_required is false"),
    ),
    probe=probe,
    # Every endpoint URL, the issuer the callback is checked against, and how the client
    # secret is presented (Basic header or form body).
    destination_fields=("auth_url", "token_url", "device_authorization_url", "issuer",
                        "token_endpoint_auth_method"),
)
