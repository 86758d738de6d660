"""The real beat and worker refresh a token before it expires (embedded service, real provider)."""
from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import requests

from tests.e2e.embedded import embedded_service
from tests.peers.oidc_peer import OIDCClient, OIDCPeer

pytestmark = pytest.mark.e2e


def test_real_beat_refreshes_token_before_expiry(tmp_path: Path, oidc: OIDCPeer) -> None:
    var_dir = tmp_path / "var"
    var_dir.mkdir()
    # 30 s tokens, 25 s threshold: due 5 s after issue, the sweep runs every 8 s.
    with embedded_service(var_dir, SYNTHORG_CFG__OAUTH__AUTO_REFRESH_THRESHOLD_SECONDS="25") as service:
        client = oidc.register(OIDCClient(client_id=f"e2e-{uuid.uuid4().hex[:8]}", client_secret=uuid.uuid4().hex,
                                          redirect_uris=(service.url("/api/v1/oauth/callback"),)))
        headers = {"Authorization": f"Token {service.operator_token()}"}
        created = requests.post(service.url("/api/v1/connections"), headers=headers, timeout=30, json={
            "name": "e2e-oauth", "connection_type": "oauth_app", "credentials": {
                "client_id": client.client_id, "client_secret": client.client_secret,
                "auth_url": oidc.authorization_endpoint, "token_url": oidc.token_endpoint, "scopes": ["api:read"]}})
        assert created.status_code == 201, created.text
        started = requests.post(service.url("/api/v1/oauth/initiate"), headers=headers, timeout=30,
                                json={"connection_name": "e2e-oauth"}).json()
        page = requests.get(oidc.complete_authorization(started["authorization_url"]), timeout=30)
        assert 'data-outcome="succeeded"' in page.text

        def refreshed() -> bool:
            status = requests.get(service.url("/api/v1/oauth/status/e2e-oauth"), headers=headers, timeout=10).json()
            return bool(status["last_refreshed_at"]) and status["status"] == "active"

        service.wait_for(refreshed, 90, "the token manager's refresh")
        assert oidc.token_requests("refresh_token") >= 1
