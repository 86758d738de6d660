from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from integrations import services as connection_services
from integrations.models import Connection
from tests.peers.oidc_peer import OIDCClient, OIDCPeer

BASE = "http://testserver"
REDIRECT_URI = BASE + "/api/v1/oauth/callback"


def query(url: str) -> dict[str, str]:
    return {key: values[-1] for key, values in parse_qs(urlsplit(url).query).items()}


@pytest.fixture(autouse=True)
def _oauth_config(settings: Any) -> None:
    settings.SYNTHORG_CONFIG_OVERRIDES = {"oauth": {"redirect_uri_base": BASE}}


@pytest.fixture
def make_connection(oidc: OIDCPeer) -> Callable[..., Connection]:
    """An oauth_app connection pointing at the real peer, with its own freshly registered client."""

    def make(name: str | None = None, *, auth_method: str = "client_secret_basic", scopes: list[str] | None = None,
             register: bool = True, **overrides: Any) -> Connection:
        client = OIDCClient(client_id=f"c-{uuid.uuid4().hex[:10]}", client_secret=uuid.uuid4().hex,
                            redirect_uris=(REDIRECT_URI,), token_endpoint_auth_method=auth_method)
        if register:
            oidc.register(client)
        credentials = {
            "client_id": client.client_id, "client_secret": client.client_secret,
            "auth_url": oidc.authorization_endpoint, "token_url": oidc.token_endpoint,
            "device_authorization_url": oidc.device_authorization_endpoint,
            "scopes": scopes if scopes is not None else ["api:read"],
            "token_endpoint_auth_method": auth_method, **overrides,
        }
        return connection_services.connection_create(
            name=name or f"oauth-{uuid.uuid4().hex[:8]}", connection_type="oauth_app", credentials=credentials)

    return make


@pytest.fixture
def connect_code_flow(oidc: OIDCPeer, operator_client: Any, client: Any) -> Callable[..., Any]:
    """Initiate through the API, log in and consent at the peer, hit our callback; returns the response."""

    def run(connection: Connection, **initiate: Any) -> Any:
        response = operator_client.post("/api/v1/oauth/initiate", {"connection_name": connection.name, **initiate},
                                     format="json")
        assert response.status_code == 200, response.content
        redirect = oidc.complete_authorization(response.json()["authorization_url"])
        assert redirect.startswith(REDIRECT_URI + "?"), redirect
        run.last_redirect = redirect  # type: ignore[attr-defined]
        return client.get(redirect[len(BASE):])

    return run
