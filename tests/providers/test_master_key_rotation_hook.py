"""`master_key_rotate` (and so `manage.py rotate_master_key`) also re-encrypts provider credentials."""
from __future__ import annotations

from typing import Any

import pytest
from cryptography.fernet import Fernet

from integrations import services as integration_services
from providers import services
from providers.models import ProviderConfig

pytestmark = pytest.mark.django_db


def test_master_key_rotation_reaches_provider_ciphertexts(monkeypatch: Any) -> None:
    provider = services.provider_create(name="legacy", driver="openai", api_key="sk-legacy-canary")
    old_key = ProviderConfig.objects.get(pk=provider.pk).embedded_key_id
    new_key = Fernet.generate_key().decode()
    import os

    monkeypatch.setenv("SYNTHORG_PREVIOUS_MASTER_KEYS", os.environ["SYNTHORG_MASTER_KEY"])
    monkeypatch.setenv("SYNTHORG_MASTER_KEY", new_key)
    report = integration_services.master_key_rotate()
    assert report.failed == 0 and report.rotated >= 1
    assert ProviderConfig.objects.get(pk=provider.pk).embedded_key_id != old_key
    monkeypatch.delenv("SYNTHORG_PREVIOUS_MASTER_KEYS")
    with pytest.warns(DeprecationWarning):
        assert services.resolve_credentials(ProviderConfig.objects.get(pk=provider.pk)).value == "sk-legacy-canary"
