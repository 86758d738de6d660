"""Authorization code + PKCE against the real provider: success, replay, expiry, mismatch, denial."""
from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from integrations import services as connection_services
from oauthflow import services
from oauthflow.models import OAuthState, OAuthToken
from synthorg.models import AuditEvent
from tests.oauthflow.conftest import BASE, REDIRECT_URI, query
from tests.peers.oidc_peer import OIDCPeer

pytestmark = pytest.mark.django_db


def test_code_flow_with_pkce_connects_and_stores_tokens_encrypted(make_connection: Any, connect_code_flow: Any,
                                                                  oidc: OIDCPeer, operator_client: Any) -> None:
    connection = make_connection()

    page = connect_code_flow(connection)

    assert page.status_code == 200
    assert page["Content-Type"].startswith("text/html")
    assert b'data-outcome="succeeded"' in page.content
    token = OAuthToken.objects.get(connection=connection)
    assert token.status == OAuthToken.Status.ACTIVE
    assert token.has_refresh_token
    access = services.get_access_token(connection)
    assert access and access not in token.ciphertext
    assert oidc.token_requests("authorization_code") == 1
    status = operator_client.get(f"/api/v1/oauth/status/{connection.name}").json()
    assert status["connected"] is True and status["status"] == "active"
    assert status["scopes"] == ["api:read"]
    assert access not in str(status)


def test_authorization_url_carries_s256_challenge_exact_redirect_and_extra_params(make_connection: Any,
                                                                                  operator_client: Any) -> None:
    # A reserved name in extra_authorization_params is refused outright: test_authorization_request_params.py.
    connection = make_connection(extra_authorization_params={"prompt": "consent"})

    body = operator_client.post("/api/v1/oauth/initiate", {"connection_name": connection.name}, format="json").json()

    params = query(body["authorization_url"])
    assert params["code_challenge_method"] == "S256"
    assert len(params["code_challenge"]) == 43
    assert params["redirect_uri"] == REDIRECT_URI
    assert params["prompt"] == "consent"
    assert params["state"] == body["state"]
    row = OAuthState.objects.get(state=body["state"])
    assert row.verifier_ciphertext and params["code_challenge"] not in row.verifier_ciphertext


def test_client_secret_post_connection_connects(make_connection: Any, connect_code_flow: Any,
                                                oidc: OIDCPeer) -> None:
    connection = make_connection(auth_method="client_secret_post")

    page = connect_code_flow(connection)

    assert b'data-outcome="succeeded"' in page.content
    assert oidc.token_request_log()[-1]["status"] == 200


def test_replayed_callback_answers_earlier_outcome_without_second_exchange(
        make_connection: Any, connect_code_flow: Any, oidc: OIDCPeer, client: Any) -> None:
    connection = make_connection()
    connect_code_flow(connection)
    first_token = OAuthToken.objects.get(connection=connection).ciphertext

    replay = client.get(connect_code_flow.last_redirect[len(BASE):])

    assert replay.status_code == 200
    assert b'data-outcome="succeeded"' in replay.content
    assert b"already answered once" in replay.content
    assert oidc.token_requests("authorization_code") == 1
    assert OAuthToken.objects.get(connection=connection).ciphertext == first_token


def test_expired_state_is_refused_and_code_not_exchanged(make_connection: Any, operator_client: Any, client: Any,
                                                         oidc: OIDCPeer) -> None:
    connection = make_connection()
    body = operator_client.post("/api/v1/oauth/initiate", {"connection_name": connection.name}, format="json").json()
    redirect = oidc.complete_authorization(body["authorization_url"])
    OAuthState.objects.filter(state=body["state"]).update(expires_at=timezone.now() - timedelta(seconds=1))

    page = client.get(redirect[len(BASE):])

    assert page.status_code == 400
    assert b'data-code="state_expired"' in page.content
    assert oidc.token_requests("authorization_code") == 0
    assert not OAuthToken.objects.filter(connection=connection).exists()


@pytest.mark.parametrize("tamper", ["unknown", "missing"])
def test_mismatched_or_missing_state_is_400_page(make_connection: Any, operator_client: Any, client: Any,
                                                 oidc: OIDCPeer, tamper: str) -> None:
    connection = make_connection()
    body = operator_client.post("/api/v1/oauth/initiate", {"connection_name": connection.name}, format="json").json()
    params = query(oidc.complete_authorization(body["authorization_url"]))
    state = "not-" + params["state"] if tamper == "unknown" else ""

    page = client.get("/api/v1/oauth/callback", {"code": params["code"], "state": state}, HTTP_ACCEPT="application/json")

    assert page.status_code == 400
    assert page["Content-Type"].startswith("text/html")
    assert b"unknown" in page.content
    assert oidc.token_requests("authorization_code") == 0


def test_access_denied_redirect_is_shown_clearly(make_connection: Any, operator_client: Any, client: Any,
                                                 oidc: OIDCPeer) -> None:
    connection = make_connection()
    body = operator_client.post("/api/v1/oauth/initiate", {"connection_name": connection.name}, format="json").json()
    redirect = oidc.deny_authorization(body["authorization_url"])

    page = client.get(redirect[len(BASE):])

    assert page.status_code == 400  # not connected: never a 200 page (issue 12)
    assert b'data-code="access_denied"' in page.content
    assert b"Access was denied at the provider" in page.content
    assert not OAuthToken.objects.filter(connection=connection).exists()
    assert AuditEvent.objects.filter(action="oauth.connect", outcome="failure", target=connection.name).exists()


def test_wrong_issuer_is_refused_without_exchange(make_connection: Any, operator_client: Any, client: Any,
                                                  oidc: OIDCPeer) -> None:
    connection = make_connection()
    body = operator_client.post("/api/v1/oauth/initiate", {"connection_name": connection.name}, format="json").json()
    params = query(oidc.complete_authorization(body["authorization_url"]))
    assert params["iss"] == oidc.issuer

    page = client.get("/api/v1/oauth/callback", {**params, "iss": "https://attacker.example"})

    assert page.status_code == 400
    assert b'data-code="issuer_mismatch"' in page.content
    assert oidc.token_requests("authorization_code") == 0


def test_callback_in_another_logged_in_users_browser_is_refused(make_connection: Any, oidc: OIDCPeer,
                                                                 operator_user: Any, user: Any, client: Any) -> None:
    connection = make_connection()
    started = services.authorization_start(connection_name=connection.name, user=operator_user)
    redirect = oidc.complete_authorization(started.authorization_url)
    client.force_login(user)

    page = client.get(redirect[len(BASE):])

    assert page.status_code == 403
    assert oidc.token_requests("authorization_code") == 0
    client.force_login(operator_user)
    assert b'data-outcome="succeeded"' in client.get(redirect[len(BASE):]).content


def test_state_expiry_follows_configuration(make_connection: Any, settings: Any) -> None:
    settings.SYNTHORG_CONFIG_OVERRIDES = {"oauth": {"redirect_uri_base": BASE, "state_expiry_seconds": 120}}
    connection = make_connection()

    started = services.authorization_start(connection_name=connection.name)

    row = OAuthState.objects.get(state=started.state)
    assert timedelta(seconds=115) < row.expires_at - row.created_at <= timedelta(seconds=121)


def test_redirect_uri_base_builds_exact_redirect_uri(make_connection: Any, settings: Any) -> None:
    settings.SYNTHORG_CONFIG_OVERRIDES = {"oauth": {"redirect_uri_base": "https://synthorg.example/"}}
    connection = make_connection()

    started = services.authorization_start(connection_name=connection.name)

    assert query(started.authorization_url)["redirect_uri"] == "https://synthorg.example/api/v1/oauth/callback"


def test_pkce_opt_out_honoured_only_when_not_required(make_connection: Any, settings: Any) -> None:
    settings.SYNTHORG_CONFIG_OVERRIDES = {"oauth": {"redirect_uri_base": BASE, "pkce_required": False}}
    connection = make_connection(pkce=False)

    without = services.authorization_start(connection_name=connection.name)
    settings.SYNTHORG_CONFIG_OVERRIDES = {"oauth": {"redirect_uri_base": BASE, "pkce_required": True}}
    forced = services.authorization_start(connection_name=connection.name)

    assert "code_challenge" not in query(without.authorization_url)
    assert query(forced.authorization_url)["code_challenge_method"] == "S256"


def test_initiate_on_other_type_is_422(operator_client: Any) -> None:
    connection_services.connection_create(name="gh", connection_type="github", credentials={"token": "x" * 20})

    response = operator_client.post("/api/v1/oauth/initiate", {"connection_name": "gh"}, format="json")

    assert response.status_code == 422
    assert response.json()["code"] == "not_oauth_app"


def test_initiate_without_needed_url_names_it(make_connection: Any, operator_client: Any) -> None:
    connection = make_connection(auth_url=None, device_authorization_url=None)

    code = operator_client.post("/api/v1/oauth/initiate", {"connection_name": connection.name}, format="json")
    device = operator_client.post("/api/v1/oauth/initiate",
                               {"connection_name": connection.name, "grant_type": "device_code"}, format="json")

    assert code.status_code == 422 and "auth_url" in code.json()["detail"]
    assert device.status_code == 422 and "device_authorization_url" in device.json()["detail"]


def test_states_purge_removes_expired_and_old_consumed(make_connection: Any) -> None:
    connection = make_connection()
    keep = services.authorization_start(connection_name=connection.name).state
    expired = services.authorization_start(connection_name=connection.name).state
    used = services.authorization_start(connection_name=connection.name).state
    now = timezone.now()
    OAuthState.objects.filter(state=expired).update(expires_at=now - timedelta(seconds=1))
    OAuthState.objects.filter(state=used).update(consumed_at=now - timedelta(days=2))

    assert services.states_purge() == 2

    assert list(OAuthState.objects.values_list("state", flat=True)) == [keep]


def test_connection_delete_cascades_to_tokens_and_states(make_connection: Any, connect_code_flow: Any) -> None:
    connection = make_connection()
    connect_code_flow(connection)
    services.authorization_start(connection_name=connection.name)

    connection_services.connection_delete(name=connection.name)

    assert not OAuthToken.objects.exists()
    assert not OAuthState.objects.exists()
