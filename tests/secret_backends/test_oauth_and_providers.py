"""OAuth's other secrets (PKCE verifiers, device codes) and providers' embedded credentials go
through the configured secret manager too, against the real OIDC peer; each is destroyed when it
is no longer needed, and the master key is not needed at all."""
from __future__ import annotations

from typing import Any

import pytest

from integrations.models import SecretRecord
from integrations.secrets import managed
from integrations.secrets.base import SecretUnavailable
from oauthflow import services as oauth_services
from oauthflow import tasks
from oauthflow.models import OAuthDeviceFlow, OAuthState, OAuthToken
from providers import services as provider_services
from tests.oauthflow.conftest import BASE, connect_code_flow, make_connection  # noqa: F401 - fixtures
from tests.oauthflow.test_device_flow import due_now, scheduled  # noqa: F401 - fixture
from tests.peers.oidc_peer import OIDCPeer
from tests.secret_backends.conftest import manager_read
from tests.secret_backends.test_connections import database_text

pytestmark = pytest.mark.django_db


@pytest.fixture
def oauth_ready(secret_backend: str, settings: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    settings.SYNTHORG_CONFIG_OVERRIDES = {**settings.SYNTHORG_CONFIG_OVERRIDES, "oauth": {"redirect_uri_base": BASE}}
    monkeypatch.delenv("SYNTHORG_MASTER_KEY")  # nothing may need it under a secret manager
    return secret_backend


def test_code_flow_keeps_the_verifier_in_the_manager_until_the_callback(
    oauth_ready: str, make_connection: Any, connect_code_flow: Any, oidc: OIDCPeer,  # noqa: F811
    django_capture_on_commit_callbacks: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:
    connection = make_connection()
    real_seal, seen = managed.seal, []

    def spy(kind: str, owner_id: Any, values: dict[str, str], **kwargs: Any) -> Any:
        stored = real_seal(kind, owner_id, values, **kwargs)
        if kind == managed.OAUTH_STATES:  # the verifier is in the manager while the user consents
            seen.append((owner_id, manager_read(oauth_ready, kind, owner_id)))
        return stored

    monkeypatch.setattr(managed, "seal", spy)
    with django_capture_on_commit_callbacks(execute=True):
        page = connect_code_flow(connection)
    monkeypatch.setattr(managed, "seal", real_seal)
    assert b'data-outcome="succeeded"' in page.content
    [(state_id, verifier)] = seen
    assert set(verifier) == {"code_verifier"}
    assert OAuthState.objects.get(pk=state_id).verifier_ciphertext == ""
    with pytest.raises(SecretUnavailable):
        manager_read(oauth_ready, managed.OAUTH_STATES, state_id)  # destroyed after the exchange
    token = OAuthToken.objects.get(connection=connection)
    assert token.ciphertext.startswith(f"ref:{oauth_ready}:")
    access = oauth_services.get_access_token(connection)
    assert manager_read(oauth_ready, managed.OAUTH_TOKENS, connection.pk)["access_token"] == access
    assert access not in database_text() and verifier["code_verifier"] not in database_text()


def test_device_code_lives_in_the_manager_while_the_flow_is_pending(
    oauth_ready: str, make_connection: Any, oidc: OIDCPeer, scheduled: Any,  # noqa: F811
    django_capture_on_commit_callbacks: Any,
) -> None:
    connection = make_connection()
    with django_capture_on_commit_callbacks(execute=True):
        flow = oauth_services.device_flow_start(connection_name=connection.name)
    flow.refresh_from_db()
    assert flow.device_code_ciphertext.startswith(f"ref:{oauth_ready}:")
    device_code = manager_read(oauth_ready, managed.OAUTH_DEVICE_CODES, flow.pk)["device_code"]
    assert device_code not in database_text()
    oidc.approve_device(flow.user_code)
    due_now(flow)
    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.device_flow_poll_task(flow.pk) is None
    flow.refresh_from_db()
    assert flow.status == OAuthDeviceFlow.Status.APPROVED and flow.device_code_ciphertext == ""
    with pytest.raises(SecretUnavailable):
        manager_read(oauth_ready, managed.OAUTH_DEVICE_CODES, flow.pk)
    assert oauth_services.get_access_token(connection)


def test_provider_embedded_credentials_live_in_the_manager(secret_backend: str,
                                                           django_capture_on_commit_callbacks: Any) -> None:
    provider = provider_services.provider_create(name="p", driver="openai", api_key="CANARY-provider-key-1")
    assert provider.embedded_ciphertext.startswith(f"ref:{secret_backend}:")
    assert manager_read(secret_backend, managed.PROVIDERS, provider.pk) == {"api_key": "CANARY-provider-key-1"}
    assert provider_services.provider_embedded_credentials(provider) == {"api_key": "CANARY-provider-key-1"}
    assert "CANARY-provider-key-1" not in database_text()
    assert not SecretRecord.objects.exists()
    with django_capture_on_commit_callbacks(execute=True):
        provider_services.provider_delete(name="p")
    with pytest.raises(SecretUnavailable):
        manager_read(secret_backend, managed.PROVIDERS, provider.pk)


def test_manager_down_at_the_callback_leaves_the_state_retryable(
    oauth_ready: str, make_connection: Any, oidc: OIDCPeer, operator_client: Any, client: Any,  # noqa: F811
    request: pytest.FixtureRequest,
) -> None:
    """The verifier cannot be read (manager down) before the code is exchanged: 503, and the same
    callback completes once the manager is back, instead of a state stuck in `in_progress`."""
    connection = make_connection()
    response = operator_client.post("/api/v1/oauth/initiate", {"connection_name": connection.name}, format="json")
    assert response.status_code == 200, response.content
    redirect = oidc.complete_authorization(response.json()["authorization_url"])
    server = request.getfixturevalue("bao" if oauth_ready == managed.VAULT else "moto")
    managed.cache_clear()  # another process: nothing of this flow cached
    server.seal() if oauth_ready == managed.VAULT else server.stop()
    try:
        page = client.get(redirect[len(BASE):])
    finally:
        server.unseal() if oauth_ready == managed.VAULT else server.start()
    assert page.status_code == 503
    assert OAuthState.objects.get().outcome == OAuthState.Outcome.PENDING
    page = client.get(redirect[len(BASE):])
    assert page.status_code == 200 and b'data-outcome="succeeded"' in page.content


def test_manager_down_after_the_code_exchange_fails_the_state(
    oauth_ready: str, make_connection: Any, oidc: OIDCPeer, operator_client: Any, client: Any,  # noqa: F811
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The code was spent but its tokens cannot be stored: 503, and the state says failed (a replay
    answers 400), never `in_progress` for ever."""
    from oauthflow import grants

    connection = make_connection()
    response = operator_client.post("/api/v1/oauth/initiate", {"connection_name": connection.name}, format="json")
    assert response.status_code == 200, response.content
    redirect = oidc.complete_authorization(response.json()["authorization_url"])
    server = request.getfixturevalue("bao" if oauth_ready == managed.VAULT else "moto")
    real_exchange = grants.exchange_code

    def exchange_then_outage(*args: Any, **kwargs: Any) -> Any:
        tokens = real_exchange(*args, **kwargs)
        server.seal() if oauth_ready == managed.VAULT else server.stop()
        return tokens

    monkeypatch.setattr(grants, "exchange_code", exchange_then_outage)
    try:
        page = client.get(redirect[len(BASE):])
    finally:
        server.unseal() if oauth_ready == managed.VAULT else server.start()
    assert page.status_code == 503
    state = OAuthState.objects.get()
    assert (state.outcome, state.outcome_code) == (OAuthState.Outcome.FAILED, "secret_backend_unavailable")
    assert not OAuthToken.objects.filter(connection=connection).exists()
    assert client.get(redirect[len(BASE):]).status_code == 400
