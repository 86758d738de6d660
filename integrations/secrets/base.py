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
    status_code = 503
    code = "secret_backend_unavailable"


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
