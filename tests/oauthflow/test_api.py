"""API permissions and shapes; client credentials; the admin Connect page; no token ever shown."""
from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse

from integrations.secrets import fernet
from oauthflow import services
from oauthflow.models import OAuthToken
from tests.oauthflow.conftest import BASE, query
from tests.peers.oidc_peer import OIDCPeer

pytestmark = pytest.mark.django_db


def test_client_credentials_initiate_returns_status_and_refetches_when_due(make_connection: Any,
                                                                           operator_client: Any, oidc: OIDCPeer) -> None:
    connection = make_connection()

    response = operator_client.post("/api/v1/oauth/initiate", {"connection_name": connection.name,
                                                            "grant_type": "client_credentials"}, format="json")

    assert response.status_code == 200
    body = response.json()
    assert body["status"]["connected"] is True and body["status"]["grant_type"] == "client_credentials"
    assert body["status"]["refresh_token_held"] is False
    token = OAuthToken.objects.get(connection=connection)
    assert services.token_refresh(token_id=token.pk).result == "refreshed"  # 30 s token, 300 s threshold
    assert oidc.token_requests("client_credentials") == 2


def test_status_never_contains_a_token(make_connection: Any, connect_code_flow: Any, user_client: Any) -> None:
    connection = make_connection()
    connect_code_flow(connection)
    secrets = fernet.decrypt(OAuthToken.objects.get(connection=connection).ciphertext)

    response = user_client.get(f"/api/v1/oauth/status/{connection.name}")

    assert response.status_code == 200
    assert set(response.json()) >= {"connection_name", "connected", "grant_type", "token_type", "scopes",
                                    "expires_at", "last_refreshed_at", "status"}
    for value in secrets.values():
        assert value not in response.content.decode()


def test_status_of_unconnected_and_unknown(make_connection: Any, user_client: Any) -> None:
    connection = make_connection()

    assert user_client.get(f"/api/v1/oauth/status/{connection.name}").json()["status"] == "not_connected"
    assert user_client.get("/api/v1/oauth/status/nope").status_code == 404


def test_status_says_when_no_refresh_token_is_held(make_connection: Any, operator_client: Any) -> None:
    connection = make_connection()
    services.client_credentials_connect(connection_name=connection.name)
    OAuthToken.objects.filter(connection=connection).update(grant_type="authorization_code")

    body = operator_client.get(f"/api/v1/oauth/status/{connection.name}").json()

    assert "no refresh token" in body["note"]


def test_anonymous_and_non_staff_cannot_initiate(make_connection: Any, api_client: Any, user_client: Any) -> None:
    name = make_connection().name

    assert api_client.post("/api/v1/oauth/initiate", {"connection_name": name}, format="json").status_code == 401
    assert user_client.post("/api/v1/oauth/initiate", {"connection_name": name}, format="json").status_code == 403
    assert api_client.get(f"/api/v1/oauth/status/{name}").status_code == 401


def test_malformed_initiate_is_400(operator_client: Any) -> None:
    response = operator_client.post("/api/v1/oauth/initiate", {"grant_type": "password"}, format="json")

    assert response.status_code == 400
    assert set(response.json()["errors"]) == {"connection_name", "grant_type"}


def test_admin_connect_page_starts_code_flow(make_connection: Any, client: Any, superuser: Any,
                                             oidc: OIDCPeer) -> None:
    connection = make_connection()
    client.force_login(superuser)

    page = client.get(reverse("admin:oauthflow_connect", args=[connection.name]))
    started = client.post(reverse("admin:oauthflow_connect_start", args=[connection.name]), {"scopes": "api:read"})

    assert page.status_code == 200 and b"Connect with the provider" in page.content
    assert started.status_code == 302
    redirect = oidc.complete_authorization(started["Location"])
    assert query(redirect)["state"]
    done = client.get(redirect[len(BASE):])
    assert b'data-outcome="succeeded"' in done.content


def test_admin_connect_page_needs_staff(make_connection: Any, client: Any, user: Any) -> None:
    client.force_login(user)

    response = client.get(reverse("admin:oauthflow_connect", args=[make_connection().name]))

    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_the_old_connect_page_under_the_api_is_gone(make_connection: Any, client: Any, superuser: Any) -> None:
    client.force_login(superuser)

    assert client.get(f"/api/v1/oauth/connect/{make_connection().name}").status_code == 404


def test_admin_token_list_shows_status_not_token(make_connection: Any, connect_code_flow: Any, client: Any,
                                                 superuser: Any) -> None:
    connection = make_connection()
    connect_code_flow(connection)
    token = OAuthToken.objects.get(connection=connection)
    client.force_login(superuser)

    listing = client.get("/admin/oauthflow/oauthtoken/")
    detail = client.get(f"/admin/oauthflow/oauthtoken/{token.pk}/change/")

    assert listing.status_code == 200 and detail.status_code == 200
    for value in fernet.decrypt(token.ciphertext).values():
        assert value not in listing.content.decode() and value not in detail.content.decode()
    assert token.ciphertext not in detail.content.decode()
