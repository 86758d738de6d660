"""The other secrets of a connection go through the configured manager too: OAuth tokens and the
previous webhook signing secret of a rotation; the database holds references only, and deleting
the connection destroys them all."""
from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from integrations import services
from integrations.models import PendingSecretDeletion
from integrations.secrets import managed
from integrations.secrets.base import SecretUnavailable
from oauthflow import services as oauth_services
from oauthflow.grants import TokenSet
from oauthflow.models import OAuthToken
from tests.secret_backends.conftest import manager_read
from tests.secret_backends.test_connections import database_text
from webhooks import receiver
from webhooks import services as webhook_services
from webhooks.models import WebhookEndpoint

pytestmark = pytest.mark.django_db
CANARY = "CANARY-dependant-9f3e"


def oauth_connection(name: str = "app") -> Any:
    return services.connection_create(name=name, connection_type="oauth_app", credentials={
        "client_id": "cid", "client_secret": CANARY + "-cs", "token_url": "https://auth.example.com/token"})


def test_oauth_tokens_live_in_the_manager(secret_backend: str, django_capture_on_commit_callbacks: Any) -> None:
    connection = oauth_connection()
    oauth_services.token_store(connection=connection, grant_type="client_credentials", requested_scopes=[],
                               tokens=TokenSet(CANARY + "-at1", "Bearer", CANARY + "-rt1", 3600, ()))
    token = OAuthToken.objects.get(connection=connection)
    assert token.ciphertext.startswith(f"ref:{secret_backend}:") and token.key_id == ""
    assert manager_read(secret_backend, managed.OAUTH_TOKENS, connection.pk) == {
        "access_token": CANARY + "-at1", "refresh_token": CANARY + "-rt1"}
    assert oauth_services.get_access_token(connection) == CANARY + "-at1"
    # A new grant writes a new version of the same secret.
    oauth_services.token_store(connection=connection, grant_type="client_credentials", requested_scopes=[],
                               tokens=TokenSet(CANARY + "-at2", "Bearer", None, 3600, ()))
    assert oauth_services.get_access_token(connection) == CANARY + "-at2"
    assert OAuthToken.objects.get(connection=connection).ciphertext != token.ciphertext
    assert CANARY not in database_text()

    with django_capture_on_commit_callbacks(execute=True):
        services.connection_delete(name="app")
    for kind in (managed.CONNECTIONS, managed.OAUTH_TOKENS):
        with pytest.raises(SecretUnavailable):
            manager_read(secret_backend, kind, connection.pk)
    assert not PendingSecretDeletion.objects.exists()


def test_previous_signing_secret_lives_in_the_manager_during_its_grace(
    secret_backend: str, django_capture_on_commit_callbacks: Any,
) -> None:
    connection = services.connection_create(name="gh", connection_type="github",
                                            credentials={"token": "t", "signing_secret": CANARY + "-old-secret"})
    webhook_services.signing_secret_rotate(name="gh", secret=CANARY + "-new-secret",
                                           previous_valid_until=timezone.now() + timedelta(hours=1))
    endpoint = WebhookEndpoint.objects.get(connection=connection)
    assert endpoint.previous_secret_ciphertext.startswith(f"ref:{secret_backend}:")
    assert manager_read(secret_backend, managed.WEBHOOK_ENDPOINTS, endpoint.pk) == {
        "signing_secret": CANARY + "-old-secret"}
    receiver.connection_cache_clear()
    found, _ = receiver.connection_for_receipt("gh")
    assert receiver.signing_secrets(found, timezone.now()) == [(CANARY + "-new-secret").encode(),
                                                               (CANARY + "-old-secret").encode()]
    assert CANARY not in database_text()

    with django_capture_on_commit_callbacks(execute=True):
        services.connection_delete(name="gh")
    with pytest.raises(SecretUnavailable):
        manager_read(secret_backend, managed.WEBHOOK_ENDPOINTS, endpoint.pk)


def test_a_destroy_that_fails_is_retried_later(secret_backend: str, request: pytest.FixtureRequest,
                                               django_capture_on_commit_callbacks: Any) -> None:
    connection = services.connection_create(name="gone", connection_type="github", credentials={"token": "t"})
    server = request.getfixturevalue("bao" if secret_backend == managed.VAULT else "moto")
    down, up = (server.seal, server.unseal) if secret_backend == managed.VAULT else (server.stop, server.start)
    down()
    try:
        with django_capture_on_commit_callbacks(execute=True):
            services.connection_delete(name="gone")  # the row goes; the secret cannot yet
    finally:
        up()
    pending = PendingSecretDeletion.objects.get()
    assert pending.owner == f"connections/{connection.pk}" and "ref:" not in pending.location
    assert manager_read(secret_backend, managed.CONNECTIONS, connection.pk) == {"token": "t"}
    PendingSecretDeletion.objects.update(next_attempt_at=timezone.now())
    managed.managers_reset()
    assert managed.pending_deletions_retry() == {"destroyed": 1, "failed": 0}
    assert not PendingSecretDeletion.objects.exists()
    with pytest.raises(SecretUnavailable):
        manager_read(secret_backend, managed.CONNECTIONS, connection.pk)
