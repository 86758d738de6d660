from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from cryptography.fernet import Fernet
from django.core.management import CommandError, call_command

from providers import services
from providers.models import ProviderConfig
from synthorg.models import AuditEvent
from tests.providers.conftest import CANARY

pytestmark = pytest.mark.django_db


def test_rotation_reencrypts_under_new_key_idempotently(make_provider: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    old_key = os.environ["SYNTHORG_MASTER_KEY"]
    provider = make_provider(api_key=CANARY)
    old_key_id = provider.embedded_key_id
    make_provider(name="no-secrets")
    monkeypatch.setenv("SYNTHORG_MASTER_KEY", Fernet.generate_key().decode())
    monkeypatch.setenv("SYNTHORG_PREVIOUS_MASTER_KEYS", old_key)

    out = StringIO()
    call_command("rotate_provider_secrets", stdout=out)
    assert "rotated 1, already current 0, failed 0" in out.getvalue()
    provider.refresh_from_db()
    assert provider.embedded_key_id != old_key_id

    # Without the old key the rotated row still decrypts: it really is under the new key.
    monkeypatch.delenv("SYNTHORG_PREVIOUS_MASTER_KEYS")
    assert services.provider_embedded_credentials(provider) == {"api_key": CANARY}
    out = StringIO()
    call_command("rotate_provider_secrets", stdout=out)
    assert "rotated 0, already current 1, failed 0" in out.getvalue()
    assert AuditEvent.objects.filter(action="provider.secrets_rotate").count() == 2


def test_rotation_without_old_key_reports_failure(make_provider: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    make_provider(api_key=CANARY)
    monkeypatch.setenv("SYNTHORG_MASTER_KEY", Fernet.generate_key().decode())
    with pytest.raises(CommandError, match="1 providers could not be decrypted"):
        call_command("rotate_provider_secrets", stdout=StringIO())
    assert ProviderConfig.objects.get().embedded_ciphertext
    event = AuditEvent.objects.get(action="provider.secrets_rotate")
    assert event.outcome == "failure"
