"""System checks for the secret backend: the service must not start without a usable key."""
from __future__ import annotations

from typing import Any

from django.core import checks

from integrations.secrets.keys import MasterKeyError, load_keyring
from synthorg.config import ConfigInvalid, get_config

STUB_BACKENDS = {"secret_manager_vault", "secret_manager_cloud_a", "secret_manager_cloud_b"}


@checks.register("synthorg")
def check_secret_backend(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    try:
        backend = get_config().integrations.secret_backend
    except ConfigInvalid:
        return []  # reported by synthorg.E001
    if backend.backend_type in STUB_BACKENDS:
        return [checks.Error(
            f"Secret backend {backend.backend_type!r} is not available in this release.",
            hint="Set integrations.secret_backend.backend_type to encrypted_sqlite or env_var.",
            id="integrations.E002",
        )]
    try:
        load_keyring()
    except MasterKeyError as exc:
        return [checks.Error(
            f"Master key problem: {exc}.",
            hint="Connection secrets and OAuth tokens are encrypted with it; the service will not start without it.",
            id="integrations.E001",
        )]
    return []
