"""`env_var`: read-only passthrough from the environment.

Naming rule: `SYNTHORG_SECRET_<CONNECTION>_<FIELD>`, where connection name and field are
upper-cased and every character that is not a letter or digit becomes `_`
(connection `gh-prod.eu`, field `token` → `SYNTHORG_SECRET_GH_PROD_EU_TOKEN`).

The variables belong to whoever runs the service, not to whoever creates the connection: a
connection of this backend *binds* them to the destination in its config. So creating one for
which a variable is already set needs the reveal permission (``integrations.services``), and
two connections may never read the same variable (``gh-prod`` and ``GH.PROD`` would).
"""
from __future__ import annotations

import os
import re
from collections.abc import Iterable

from integrations.models import Connection, SecretRef
from integrations.secrets.base import SecretBackendReadOnly

PREFIX = "SYNTHORG_SECRET_"


def variable_name(connection_name: str, field: str) -> str:
    normalised = re.sub(r"[^A-Z0-9]", "_", f"{connection_name}_{field}".upper())
    return PREFIX + normalised


def variables(connection_name: str, fields: Iterable[str]) -> dict[str, str]:
    """field → the variable it is read from."""
    return {field: variable_name(connection_name, field) for field in fields}


def variables_set(connection_name: str, fields: Iterable[str]) -> list[str]:
    """The names (never values) of the variables set for these fields, in field order."""
    return [name for name in variables(connection_name, fields).values() if os.environ.get(name)]


class EnvVarBackend:
    name = "env_var"
    read_only = True

    def store(self, *, connection: Connection, values: dict[str, str], ref: SecretRef | None,
              purpose: str = "credentials") -> SecretRef:
        if values:
            names = ", ".join(variable_name(connection.name, field) for field in sorted(values))
            raise SecretBackendReadOnly(
                f"The env_var secret backend is read-only: set {names} in the service's environment instead."
            )
        return SecretRef(self.name, connection.name)

    def retrieve(self, *, connection: Connection, ref: SecretRef, fields: tuple[str, ...] = ()) -> dict[str, str]:
        values = {}
        for field in fields:
            value = os.environ.get(variable_name(connection.name, field))
            if value:
                values[field] = value
        return values

    def delete(self, *, ref: SecretRef) -> None:
        return None  # nothing stored here; the operator owns the environment

    def rotate(self, *, ref: SecretRef) -> bool:
        return False
