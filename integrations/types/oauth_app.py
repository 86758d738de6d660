from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from integrations.types.base import ConnectionType, FieldSpec, https_url_unless_loopback
from integrations.types.probing import UNKNOWN, HealthResult, ProbeContext, healthy, unhealthy

# Token states written by oauthflow (the only writer of token status), as this check reads them.
HEALTHY_TOKEN_STATES = frozenset({"valid", "active", "ok", "refreshed", "expiring"})
UNHEALTHY_TOKEN_STATES = frozenset({"expired", "refresh_failed", "revoked", "invalid", "error", "failed"})


def _token_status_reader() -> Callable[[Any], Any] | None:
    """``oauthflow.selectors.token_status(connection)`` when oauthflow provides it.

    Imported lazily: integrations must not depend on oauthflow at import time (imports flow
    one way), and the check reports ``unknown`` rather than failing while it is absent.
    """
    try:
        selectors = importlib.import_module("oauthflow.selectors")
    except ImportError:
        return None
    reader = getattr(selectors, "token_status", None)
    return reader if callable(reader) else None


def _field(state: Any, name: str) -> Any:
    return state.get(name) if isinstance(state, dict) else getattr(state, name, None)


def probe(context: ProbeContext) -> HealthResult:
    """Not a network check: reports the state of the connection's OAuth token."""
    reader = _token_status_reader()
    if reader is None or context.connection is None:
        return HealthResult(UNKNOWN, "not applicable: token state is not available")
    state = reader(context.connection)
    if state is None:
        return HealthResult(UNKNOWN, "not applicable: no token has been obtained yet")
    status = state if isinstance(state, str) else _field(state, "status")
    status = str(status or "").lower()
    error = _field(state, "error") if not isinstance(state, str) else None
    suffix = f": {str(error)[:200]}" if error else ""
    if status in HEALTHY_TOKEN_STATES:
        return healthy(f"token {status}")
    if status in UNHEALTHY_TOKEN_STATES:
        return unhealthy(f"token {status}{suffix}")
    return HealthResult(UNKNOWN, f"token state {status or 'unreported'}")


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
        FieldSpec("pkce", kind="boolean", default=True,
                  help="may be false only when integrations.oauth.pkce_required is false"),
    ),
    probe=probe,
)
