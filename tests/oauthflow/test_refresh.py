"""Refresh, rotation, error classification and the token manager sweep against the real provider."""
from __future__ import annotations

import socket
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from integrations.secrets import fernet
from oauthflow import grants, services, tasks
from oauthflow.grants import TokenEndpointError, TokenSet
from oauthflow.models import OAuthToken
from synthorg.models import AuditEvent
from tests.peers.oidc_peer import OIDCPeer

pytestmark = pytest.mark.django_db


@pytest.fixture
def connected(make_connection: Any, connect_code_flow: Any) -> Any:
    connection = make_connection()
    connect_code_flow(connection)
    return connection


def stored(connection: Any) -> dict[str, str]:
    return fernet.decrypt(OAuthToken.objects.get(connection=connection).ciphertext)


def expire(connection: Any, seconds: int = -1) -> OAuthToken:
    OAuthToken.objects.filter(connection=connection).update(expires_at=timezone.now() + timedelta(seconds=seconds))
    return OAuthToken.objects.get(connection=connection)


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/token"


def test_expired_token_is_refreshed_with_rotation(connected: Any, oidc: OIDCPeer) -> None:
    before = stored(connected)
    token = expire(connected)

    assert services.token_refresh(token_id=token.pk).result == "refreshed"

    after = stored(connected)
    assert after["access_token"] != before["access_token"]
    assert after["refresh_token"] != before["refresh_token"]  # rotated
    token.refresh_from_db()
    assert token.status == OAuthToken.Status.ACTIVE and token.last_refreshed_at is not None
    assert token.expires_at > timezone.now()
    # The rotated refresh token works: the connection survives a second refresh.
    expire(connected)
    assert services.token_refresh(token_id=token.pk).result == "refreshed"
    assert oidc.token_requests("refresh_token") == 2


def test_token_not_due_is_left_alone(connected: Any, oidc: OIDCPeer, settings: Any) -> None:
    settings.SYNTHORG_CONFIG_OVERRIDES = {"oauth": {"redirect_uri_base": "http://testserver",
                                                    "auto_refresh_threshold_seconds": 5}}
    token = expire(connected, seconds=20)

    assert services.token_refresh(token_id=token.pk).result == "not_due"
    assert services.tokens_refresh_due() == []
    settings.SYNTHORG_CONFIG_OVERRIDES = {"oauth": {"redirect_uri_base": "http://testserver",
                                                    "auto_refresh_threshold_seconds": 60}}
    assert services.tokens_refresh_due() == [token.pk]
    assert oidc.token_requests("refresh_token") == 0


def test_beat_task_refreshes_due_tokens(connected: Any, oidc: OIDCPeer) -> None:
    expire(connected, seconds=10)  # within the default 300 s threshold

    result = tasks.tokens_refresh_due_task()

    assert result == {"queued": 1}
    assert oidc.token_requests("refresh_token") == 1
    assert tasks.tokens_refresh_due_task() == {"queued": 1}  # 30 s tokens are always within 300 s
    assert OAuthToken.objects.get(connection=connected).status == OAuthToken.Status.ACTIVE


def test_refresh_without_new_refresh_token_keeps_old_one(connected: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    old = stored(connected)["refresh_token"]
    token = expire(connected)
    monkeypatch.setattr(grants, "refresh", lambda client, refresh_token: TokenSet(
        access_token="new-access", token_type="Bearer", refresh_token=None, expires_in=60, scopes=()))

    assert services.token_refresh(token_id=token.pk).result == "refreshed"

    assert stored(connected) == {"access_token": "new-access", "refresh_token": old}
    assert OAuthToken.objects.get(pk=token.pk).scopes == ["api:read"]


def test_revoked_grant_marks_reauthorization_required_and_stops(connected: Any, oidc: OIDCPeer,
                                                                 operator_client: Any) -> None:
    token = expire(connected)
    oidc.revoke_grants(connected.config["client_id"])

    outcome = services.token_refresh(token_id=token.pk)

    assert outcome.result == "reauthorization_required"
    token.refresh_from_db()
    assert token.status == OAuthToken.Status.REAUTHORIZATION_REQUIRED
    assert "invalid_grant" in token.last_error
    assert AuditEvent.objects.filter(action="oauth.reauthorization_required", target=connected.name).count() == 1
    # No further attempts: neither the sweep nor a caller goes back to the provider.
    assert services.tokens_refresh_due() == []
    with pytest.raises(services.ReauthorizationRequired):
        services.get_access_token(connected)
    assert oidc.token_requests("refresh_token") == 1
    assert operator_client.get(f"/api/v1/oauth/status/{connected.name}").json()["status"] == "reauthorization_required"


def test_unreachable_token_endpoint_is_transient_with_backoff(connected: Any, oidc: OIDCPeer) -> None:
    token = expire(connected, seconds=60)
    config = {**connected.config, "token_url": closed_port_url()}
    type(connected).objects.filter(pk=connected.pk).update(config=config)

    outcome = services.token_refresh(token_id=token.pk)

    assert outcome.result == "failed"
    token.refresh_from_db()
    assert token.status == OAuthToken.Status.ACTIVE  # still valid: status kept
    assert token.failure_count == 1
    assert token.next_attempt_at > timezone.now() + timedelta(seconds=20)
    assert token.lease_until is None
    assert services.tokens_refresh_due() == []  # backing off
    assert services.get_access_token(connected) == stored(connected)["access_token"]  # still usable


def test_transient_failure_of_expired_token_is_error_status(connected: Any) -> None:
    token = expire(connected)
    type(connected).objects.filter(pk=connected.pk).update(config={**connected.config,
                                                                   "token_url": closed_port_url()})

    with pytest.raises(services.TokenUnavailable):
        services.get_access_token(connected)

    token.refresh_from_db()
    assert token.status == OAuthToken.Status.ERROR and token.failure_count == 1


def test_lost_lease_result_is_discarded(connected: Any, oidc: OIDCPeer, monkeypatch: pytest.MonkeyPatch) -> None:
    token = expire(connected)
    real_refresh = grants.refresh

    def slow_holder(client: Any, refresh_token: str) -> TokenSet:
        # While "we" wait on the provider, our lease runs out and another worker refreshes.
        OAuthToken.objects.filter(pk=token.pk).update(lease_until=timezone.now() - timedelta(seconds=1))
        monkeypatch.setattr(grants, "refresh", real_refresh)
        assert services.token_refresh(token_id=token.pk).result == "refreshed"
        return TokenSet(access_token="stale", token_type="Bearer", refresh_token="stale-r", expires_in=60, scopes=())

    monkeypatch.setattr(grants, "refresh", slow_holder)

    assert services.token_refresh(token_id=token.pk).result == "lost_lease"

    assert stored(connected)["access_token"] != "stale"
    assert OAuthToken.objects.get(pk=token.pk).status == OAuthToken.Status.ACTIVE


def test_lease_outlives_token_endpoint_timeout_times_tries() -> None:
    assert services.lease_seconds() > sum(grants.TOKEN_TIMEOUT) * grants.TOKEN_TRIES


@pytest.mark.parametrize(("status", "error", "permanent"), [
    (400, "invalid_grant", True), (401, "invalid_client", True), (400, "unauthorized_client", True),
    (403, "", True), (404, "", True), (408, "", False), (409, "", False), (423, "", False), (425, "", False),
    (429, "", False), (500, "", False), (503, "temporarily_unavailable", False),
])
def test_error_classification_follows_the_documented_rule(status: int, error: str, permanent: bool) -> None:
    assert grants.classify_status(status, error, "", retry_after=None, where="t").permanent is permanent


def test_retry_delay_grows_and_honours_retry_after() -> None:
    assert services.retry_delay(1) < services.retry_delay(3) <= services.RETRY_MAX_SECONDS * 1.1
    assert services.retry_delay(1, retry_after=900) == 900


@pytest.mark.parametrize("body", [
    {"access_token": "", "expires_in": 60}, {"expires_in": 60}, {"access_token": 5},
    {"access_token": "a", "expires_in": "3600"}, {"access_token": "a", "expires_in": True},
    {"access_token": "a", "expires_in": 0}, {"access_token": "a", "expires_in": -5},
    {"access_token": "a", "expires_in": 1.5}, {"access_token": "a", "refresh_token": 7},
    {"access_token": "a", "scope": ["x"]},
])
def test_strict_token_parsing_rejects_wrong_types(body: dict[str, Any]) -> None:
    with pytest.raises(TokenEndpointError):
        grants.strict_token_body(body)


def test_strict_token_parsing_accepts_a_good_body() -> None:
    parsed = grants.strict_token_body({"access_token": "a", "expires_in": 60, "scope": "x y", "token_type": "bearer"})
    assert parsed.expires_in == 60 and parsed.scopes == ("x", "y")


def test_plain_http_to_a_remote_host_is_refused(connected: Any) -> None:
    token = expire(connected)
    type(connected).objects.filter(pk=connected.pk).update(config={**connected.config,
                                                                   "token_url": "http://provider.example/token"})

    assert services.token_refresh(token_id=token.pk).result == "reauthorization_required"
    assert "https" in OAuthToken.objects.get(pk=token.pk).last_error
