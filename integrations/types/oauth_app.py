from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from integrations.types.base import ConnectionType, FieldSpec, https_url_unless_loopback
from integrations.types.probing import UNKNOWN, HealthResult, ProbeContext, healthy, unhealthy

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
        FieldSpec("auth_url", kind="url", validators=(https_url_unless_loopback,),
                  help="authorization endpoint (code flow)"),
        FieldSpec("token_url", kind="url", required=True, validators=(https_url_unless_loopback,)),
        FieldSpec("device_authorization_url", kind="url", validators=(https_url_unless_loopback,),
                  help="device authorization endpoint (device flow)"),
        FieldSpec("scopes", kind="list", default=[], help="default scopes"),
        FieldSpec("token_endpoint_auth_method", default="client_secret_basic",
                  choices=("client_secret_basic", "client_secret_post")),
        FieldSpec("extra_authorization_params", kind="mapping", default={},
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
