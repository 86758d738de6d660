"""The oauth_app check reads the token state that oauthflow writes (no network)."""
from __future__ import annotations

from typing import Any

import pytest

from integrations.types import oauth_app
from integrations.types.probing import HEALTHY, UNHEALTHY, UNKNOWN, ProbeContext


def run(monkeypatch: pytest.MonkeyPatch, document: Any) -> Any:
    import oauthflow.selectors

    monkeypatch.delattr(oauthflow.selectors, "token_status", raising=False)
    monkeypatch.setattr(oauthflow.selectors, "oauth_status", lambda connection: document)
    return oauth_app.probe(ProbeContext(connection_id=1, name="app", values={}, timeout=5, connection=object()))


@pytest.mark.parametrize(("document", "status", "detail"), [
    ({"status": "not_connected", "connected": False}, UNKNOWN, "not applicable: no token has been obtained yet"),
    ({"status": "active", "connected": True}, HEALTHY, "token active"),
    ({"status": "refreshing", "connected": True}, HEALTHY, "token refreshing"),
    ({"status": "reauthorization_required", "connected": False, "last_error": "invalid_grant"}, UNHEALTHY,
     "token reauthorization_required: invalid_grant"),
    ({"status": "error", "connected": True, "last_error": "HTTP 500"}, UNHEALTHY, "token error: HTTP 500"),
    ({"status": "active", "connected": False}, UNHEALTHY, "token active, expired and not refreshable"),
])
def test_token_state_maps_to_health(monkeypatch: pytest.MonkeyPatch, document: dict[str, Any], status: str,
                                    detail: str) -> None:
    result = run(monkeypatch, document)
    assert (result.status, result.detail) == (status, detail)


def test_without_a_connection_not_applicable() -> None:
    result = oauth_app.probe(ProbeContext(connection_id=1, name="app", values={}, timeout=5))
    assert result.status == UNKNOWN
