"""`manage.py check` reports a secret manager that cannot be used in one line; the master key
is required only while something is still stored by encrypted_sqlite; /readyz names the manager."""
from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from integrations import services
from integrations.checks import check_secret_backend
from integrations.secrets import managed
from tests.secret_backends.conftest import backend_overrides
from tests.secret_backends.servers import BaoServer, MotoServer, free_port

pytestmark = pytest.mark.django_db


def one_error(config: dict[str, Any], integrations_config: Any) -> str:
    integrations_config({"secret_backend": config})
    managed.managers_reset()
    [error] = [m for m in check_secret_backend() if m.id == "integrations.E004"]
    assert "\n" not in error.msg
    return error.msg


def test_vault_problems_are_one_line_each(bao: BaoServer, integrations_config: Any,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VAULT_TOKEN", raising=False)
    config = backend_overrides(managed.VAULT, bao=bao)
    assert "VAULT_TOKEN not set" in one_error(config, integrations_config)
    monkeypatch.setenv("VAULT_TOKEN", "not-a-token")
    assert "login refused" in one_error(config, integrations_config)
    monkeypatch.setenv("VAULT_TOKEN", bao.root_token)
    dead = {**config, "vault": {**config["vault"], "url": f"http://127.0.0.1:{free_port()}"}}
    assert "cannot reach" in one_error(dead, integrations_config)
    approle = {**config, "vault": {**config["vault"], "auth": "approle"}}
    monkeypatch.delenv("VAULT_ROLE_ID", raising=False)
    assert "VAULT_ROLE_ID and VAULT_SECRET_ID not set" in one_error(approle, integrations_config)
    integrations_config({"secret_backend": config})
    managed.managers_reset()
    assert not [m for m in check_secret_backend() if m.id == "integrations.E004"]


def test_aws_unreachable_endpoint_is_one_line(moto: MotoServer, integrations_config: Any) -> None:
    config = backend_overrides(managed.AWS, moto=moto)
    dead = {**config, "aws": {**config["aws"], "endpoint_url": f"http://127.0.0.1:{free_port()}"}}
    assert "unavailable" in one_error(dead, integrations_config)
    integrations_config({"secret_backend": config})
    managed.managers_reset()
    assert not [m for m in check_secret_backend() if m.id == "integrations.E004"]


def test_master_key_is_needed_only_while_encrypted_sqlite_holds_something(
    secret_backend: str, integrations_config: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from django.conf import settings

    managed_config = settings.SYNTHORG_CONFIG_OVERRIDES
    services.connection_create(name="in-manager", connection_type="github", credentials={"token": "t"})
    monkeypatch.delenv("SYNTHORG_MASTER_KEY")
    assert [m.id for m in check_secret_backend()] == []
    monkeypatch.setenv("SYNTHORG_MASTER_KEY", "qbYj6U5c3rSRlFqbpNHXHw0fyV0TGCkZjmdYk1t1l0A=")
    integrations_config({**managed_config, "secret_backend": {**managed_config["secret_backend"],
                                                              "backend_type": "encrypted_sqlite"}})
    services.connection_create(name="in-db", connection_type="github", credentials={"token": "t"})
    integrations_config(managed_config)
    monkeypatch.delenv("SYNTHORG_MASTER_KEY")
    [error] = check_secret_backend()
    assert error.id == "integrations.E001" and "secrets_migrate" in error.hint


def test_readyz_names_the_secret_manager(secret_backend: str) -> None:
    response = Client().get("/readyz")
    assert response.json()["checks"]["secret_backend"] == "ok"
    assert response.json()["checks"]["secret_manager"] == {
        "backend": secret_backend, "reachable": True, "unsealed": True, "authenticated": True}
