"""The secret backend interface: store / retrieve / delete / rotate, keyed by `SecretRef`."""
from __future__ import annotations

from typing import Protocol

from integrations.models import Connection, SecretRef
from synthorg.errors import Conflict, SynthorgError


class SecretUnavailable(SynthorgError):
    """Secrets exist but cannot be read (wrong key, corrupt row, missing env var)."""

    status_code = 503
    code = "secret_unavailable"


class SecretBackendReadOnly(Conflict):
    code = "secret_backend_read_only"


class SecretBackendUnavailable(SynthorgError):
    """The secret manager is unreachable, sealed or refuses: a 503 with Retry-After, never a 500,
    never a reason to call a connection unhealthy (the remote service was not even asked)."""

    status_code = 503
    code = "secret_backend_unavailable"
    default_detail = "The secret backend is unavailable; retry later."
    retry_after: float | None = 30.0


class SecretBackend(Protocol):
    name: str
    read_only: bool

    def store(self, *, connection: Connection, values: dict[str, str], ref: SecretRef | None) -> SecretRef:
        """Write the whole set of secret fields (replacing any earlier set) and return its ref."""
        ...

    def retrieve(self, *, connection: Connection, ref: SecretRef, fields: tuple[str, ...]) -> dict[str, str]:
        ...

    def delete(self, *, ref: SecretRef) -> None:
        ...

    def rotate(self, *, ref: SecretRef) -> bool:
        """Re-encrypt under the current key; True if anything changed."""
        ...
