"""Vault auth lifecycle against the real OpenBao server: AppRole login, renewal of a short-TTL
token before it ends, a new login when renewal is refused (max TTL reached), and one re-login
and retry on a 403 (the token revoked under the service)."""
from __future__ import annotations

import logging
import time
from typing import Any

import pytest

from integrations import services
from integrations.secrets import managed
from integrations.secrets.base import SecretBackendUnavailable
from tests.secret_backends.conftest import backend_overrides
from tests.secret_backends.servers import BaoServer

pytestmark = pytest.mark.django_db

POLICY = """
path "secret/data/{prefix}/*"     {{ capabilities = ["create", "read", "update"] }}
path "secret/metadata/{prefix}/*" {{ capabilities = ["read", "delete"] }}
"""


@pytest.fixture
def approle(bao: BaoServer, integrations_config: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    """An AppRole whose tokens live 4 s (renewable up to 8 s), limited by the README's policy."""
    root = bao.client()
    if "approle/" not in root.sys.list_auth_methods()["data"]:
        root.sys.enable_auth_method("approle")
    prefix = "approle-" + str(time.monotonic_ns())
    root.sys.create_or_update_policy(name=prefix, policy=POLICY.format(prefix=prefix))
    root.auth.approle.create_or_update_approle(prefix, token_policies=[prefix], token_ttl="4s",
                                               token_max_ttl="8s")
    role_id = root.auth.approle.read_role_id(prefix)["data"]["role_id"]
    secret_id = root.auth.approle.generate_secret_id(prefix)["data"]["secret_id"]
    monkeypatch.setenv("VAULT_ROLE_ID", role_id)
    monkeypatch.setenv("VAULT_SECRET_ID", secret_id)
    monkeypatch.delenv("VAULT_TOKEN", raising=False)
    integrations_config({"secret_backend": backend_overrides(managed.VAULT, bao=bao, prefix=prefix, auth="approle",
                                                             cache_ttl_seconds=0)})
    managed.managers_reset()
    return prefix


def test_approle_login_renewal_and_relogin(approle: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="integrations.secrets.vault")
    connection = services.connection_create(name="ar", connection_type="github", credentials={"token": "t-0"})
    assert "logged in (approle auth, ttl 4s" in caplog.text
    manager = managed.manager(managed.VAULT)
    first_token = manager.client().token
    # Past half the TTL: the next call renews; past the max TTL renewal is refused -> new login.
    for n in range(1, 6):
        time.sleep(2.1)
        services.connection_update(name="ar", data={"credentials": {"token": f"t-{n}"}})
        assert services.connection_secrets(connection) == {"token": f"t-{n}"}
    assert "token renewed" in caplog.text
    assert caplog.text.count("logged in (approle auth") >= 2
    assert manager.client().token != first_token


def test_a_403_logs_in_again_once_and_retries(approle: str, bao: BaoServer,
                                              caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="integrations.secrets.vault")
    connection = services.connection_create(name="rv", connection_type="github", credentials={"token": "t"})
    manager = managed.manager(managed.VAULT)
    bao.client().auth.token.revoke(manager.client().token)  # revoked under the service
    assert services.connection_secrets(connection) == {"token": "t"}
    assert "403 on read; logging in again once" in caplog.text


def test_a_refused_login_is_503_not_500(approle: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAULT_SECRET_ID", "not-the-secret-id")
    managed.managers_reset()
    with pytest.raises(SecretBackendUnavailable):
        services.connection_create(name="no", connection_type="github", credentials={"token": "t"})
