from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from integrations.types.base import ConnectionType, FieldSpec, hostname, port_number


def _rules(values: Mapping[str, Any]) -> dict[str, list[str]]:
    # AUTH needs both; one without the other is always a mistake.
    if bool(values.get("username")) != bool(values.get("password")):
        missing = "password" if values.get("username") else "username"
        return {missing: ["username and password must be given together, or neither"]}
    return {}


CONNECTION_TYPE = ConnectionType(
    name="smtp",
    label="SMTP",
    description="An SMTP relay for notifications.",
    fields=(
        FieldSpec("host", required=True, validators=(hostname,)),
        FieldSpec("port", kind="integer", default=587, validators=(port_number,)),
        FieldSpec("username"),
        FieldSpec("password", secret=True),
        FieldSpec("use_tls", kind="boolean", default=True, help="STARTTLS after EHLO"),
    ),
    rules=_rules,
)
