"""Secret backends by name (`integrations.secret_backend.backend_type` picks the default)."""
from __future__ import annotations

from typing import Any

from integrations.secrets.env_var import EnvVarBackend
from integrations.secrets.fernet import EncryptedDatabaseBackend
from integrations.secrets.managed import MANAGED_BACKENDS
from integrations.secrets.managed_backend import ManagedBackend
from integrations.secrets.stubs import STUB_NAMES, StubBackend
from synthorg.config import get_config


def get_backend(name: str | None = None) -> Any:
    name = name or get_config().integrations.secret_backend.backend_type
    if name == EncryptedDatabaseBackend.name:
        return EncryptedDatabaseBackend()
    if name == EnvVarBackend.name:
        return EnvVarBackend()
    if name in MANAGED_BACKENDS:
        return ManagedBackend(name)
    if name in STUB_NAMES:
        return StubBackend(name)
    raise KeyError(name)


__all__ = ["get_backend"]
