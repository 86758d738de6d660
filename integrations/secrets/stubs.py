"""External secret managers declared for the future: selectable names that fail loudly."""
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
            "use encrypted_sqlite or env_var.",
            code="secret_backend_not_available",
        )

    store = retrieve = delete = rotate = _refuse


STUB_NAMES = ("secret_manager_vault", "secret_manager_cloud_a", "secret_manager_cloud_b")
