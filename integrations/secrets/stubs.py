"""Secret managers declared for the future: selectable names that fail loudly.

`secret_manager_cloud_b` (Google Cloud Secret Manager) has no emulator installable here, so it
is not offered as working: the system check refuses to start with it.
"""
from __future__ import annotations

from typing import Any, NoReturn

from integrations.secrets.base import SecretBackendUnavailable


class StubBackend:
    # Not read-only: every write must reach `store` and fail loudly, never be skipped silently.
    read_only = False

    def __init__(self, name: str) -> None:
        self.name = name

    def _refuse(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise SecretBackendUnavailable(
            f"Secret backend {self.name!r} is not available in this release; "
            "use encrypted_sqlite, env_var, secret_manager_vault or secret_manager_cloud_a.",
            code="secret_backend_not_available",
        )

    store = retrieve = delete = rotate = _refuse


STUB_NAMES = ("secret_manager_cloud_b",)
