"""`master_key_rotate` re-encrypts every app's ciphertexts: OAuth tokens and webhook secrets too."""
from __future__ import annotations

import os
from typing import Any

import pytest
from cryptography.fernet import Fernet, InvalidToken

from integrations import services
from integrations.secrets.fernet import key_fingerprint
from oauthflow.grants import TokenSet
from oauthflow.models import OAuthToken
from oauthflow.services import token_store
from webhooks.models import WebhookEndpoint
from webhooks.services import signing_secret_rotate

pytestmark = pytest.mark.django_db


def test_rotation_reaches_oauth_tokens_and_previous_signing_secrets(monkeypatch: Any) -> None:
    app = services.connection_create(name="app", connection_type="oauth_app", credentials={
        "client_id": "c", "client_secret": "s", "token_url": "https://idp.example.com/token"})
    token_store(connection=app, grant_type="client_credentials",
                tokens=TokenSet("at-canary", "Bearer", "rt-canary", 3600, ("api",)), requested_scopes=["api"])
    services.connection_create(name="gh", connection_type="github",
                               credentials={"token": "t", "signing_secret": "old-secret"})
    signing_secret_rotate(name="gh", secret="new-secret-0123456789abcdef")

    old_key = os.environ["SYNTHORG_MASTER_KEY"]
    new_key = Fernet.generate_key().decode()
    monkeypatch.setenv("SYNTHORG_PREVIOUS_MASTER_KEYS", old_key)
    monkeypatch.setenv("SYNTHORG_MASTER_KEY", new_key)
    report = services.master_key_rotate()
    assert report.failed == 0

    only_new = Fernet(new_key.encode())
    token = OAuthToken.objects.get(connection=app)
    assert b"at-canary" in only_new.decrypt(token.ciphertext.encode())
    assert token.key_id == key_fingerprint(only_new)
    endpoint = WebhookEndpoint.objects.get(connection__name="gh")
    assert b"old-secret" in only_new.decrypt(endpoint.previous_secret_ciphertext.encode())
    assert endpoint.previous_secret_key_id == key_fingerprint(only_new)
    with pytest.raises(InvalidToken):
        Fernet(old_key.encode()).decrypt(token.ciphertext.encode())

    again = services.master_key_rotate()
    assert again.rotated == 0 and again.failed == 0
