"""Session-scoped OpenBao and moto servers, and `secret_backend`: each test that takes it runs
once per real backend with the service configured for it."""
from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from integrations.secrets import managed
from tests.secret_backends.servers import BaoServer, MotoServer, start_bao, start_moto

BACKENDS = ["secret_manager_vault", "secret_manager_cloud_a"]


@pytest.fixture(scope="session")
def bao() -> Iterator[BaoServer]:
    server = start_bao()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def moto() -> Iterator[MotoServer]:
    # Credentials for moto only (it accepts any); the standard boto3 chain reads them.
    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")}
    os.environ.update({"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"})
    os.environ.pop("AWS_SESSION_TOKEN", None)
    server = start_moto()
    yield server
    server.stop()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def backend_overrides(name: str, *, bao: BaoServer | None = None, moto: MotoServer | None = None,
                      prefix: str = "synthorg-test", **vault: Any) -> dict[str, Any]:
    config: dict[str, Any] = {"backend_type": name}
    if bao is not None:
        config["vault"] = {"url": bao.url, "path_prefix": prefix, "timeout_seconds": 2, **vault}
    if moto is not None:
        config["aws"] = {"endpoint_url": moto.url, "region": "eu-west-1", "name_prefix": prefix + "/",
                         "recovery_window_days": 0, "timeout_seconds": 2}
    return config


@pytest.fixture(params=BACKENDS)
def secret_backend(request: pytest.FixtureRequest, integrations_config: Any,
                   monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The service configured for one real secret manager (its server started on first use)."""
    name: str = request.param
    bao = request.getfixturevalue("bao") if name == managed.VAULT else None
    moto = request.getfixturevalue("moto") if name == managed.AWS else None
    if bao is not None:
        monkeypatch.setenv("VAULT_TOKEN", bao.root_token)
    prefix = "t-" + os.urandom(4).hex()  # every test its own paths: nothing left by another test
    integrations_config({"secret_backend": backend_overrides(name, bao=bao, moto=moto, prefix=prefix),
                         "connections": {"reveal_rate_per_minute": 0}})
    managed.managers_reset()
    yield name
    managed.managers_reset()


def manager_read(name: str, kind: str, owner_id: Any) -> dict[str, str]:
    """The latest version of an owner's secret, read straight from the manager."""
    found = managed.manager(name)
    return found.read(found.location(kind, owner_id), "")
