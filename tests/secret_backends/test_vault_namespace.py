"""Vault's namespace header (OpenBao namespaces): secrets go to the configured namespace's mount."""
from __future__ import annotations

import time
from typing import Any

import hvac
import hvac.exceptions
import pytest

from integrations import services
from integrations.secrets import managed
from tests.secret_backends.conftest import backend_overrides
from tests.secret_backends.servers import BaoServer

pytestmark = pytest.mark.django_db


def test_secrets_live_in_the_configured_namespace(bao: BaoServer, integrations_config: Any,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    namespace = f"team{time.monotonic_ns()}"
    root = bao.client()
    root.sys.create_namespace(path=namespace)
    scoped = hvac.Client(url=bao.url, token=bao.root_token, namespace=namespace)
    scoped.sys.enable_secrets_engine("kv", path="secret", options={"version": "2"})
    monkeypatch.setenv("VAULT_TOKEN", bao.root_token)
    integrations_config({"secret_backend": backend_overrides(managed.VAULT, bao=bao, prefix="ns",
                                                             namespace=namespace)})
    managed.managers_reset()
    connection = services.connection_create(name="ns", connection_type="github", credentials={"token": "in-ns"})
    path = f"ns/connections/{connection.pk}"
    assert scoped.secrets.kv.v2.read_secret_version(path=path, mount_point="secret",
                                                    raise_on_deleted_version=True)["data"]["data"] == {
        "token": "in-ns"}
    with pytest.raises(hvac.exceptions.InvalidPath):
        root.secrets.kv.v2.read_secret_version(path=path, mount_point="secret", raise_on_deleted_version=True)
    assert services.connection_secrets(connection) == {"token": "in-ns"}
    managed.managers_reset()


def test_any_other_vault_refusal_is_a_503_naming_no_path(bao: BaoServer, integrations_config: Any,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    # A mount that does not exist: Vault answers 400/404 on the write, which hvac raises as its own
    # exception with the path in its message. The API must answer 503, not 500, and say no path.
    from django.contrib.auth import get_user_model
    from rest_framework.test import APIClient

    monkeypatch.setenv("VAULT_TOKEN", bao.root_token)
    integrations_config({"secret_backend": backend_overrides(managed.VAULT, bao=bao, prefix="nomount",
                                                             mount="no-such-mount")})
    managed.managers_reset()
    client = APIClient()
    client.force_authenticate(get_user_model().objects.create_superuser("root", "r@example.com", "pw-root-123"))
    response = client.post("/api/v1/connections", {"name": "nm", "connection_type": "github",
                                                   "credentials": {"token": "t-nomount"}}, format="json")
    assert response.status_code == 503, response.content
    assert response.json()["code"] == "secret_backend_unavailable"
    assert "nomount" not in response.content.decode() and "no-such-mount" not in response.content.decode()
    managed.managers_reset()
