"""What a connection type declares: its fields (required, secret, default, validator), its
cross-field rules, its webhook signature scheme and its health check (`probe`, see
`integrations.types.probing` for the contract).

Adding a type means adding one module beside this one and listing it in `__init__.py`.
Validators raise `ValueError` with the rule in words; the service turns those into 422s
that name the field.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from integrations.types.probing import HealthResult, ProbeContext
from synthorg import url_policy

Validator = Callable[[Any], None]


@dataclass(frozen=True)
class FieldSpec:
    name: str
    kind: str = "string"  # string | integer | boolean | url | list
    required: bool = False
    secret: bool = False
    default: Any = None
    choices: tuple[str, ...] | None = None
    help: str = ""
    validators: tuple[Validator, ...] = ()

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "required": self.required, "secret": self.secret,
                "default": self.default, "choices": list(self.choices) if self.choices else None,
                "help": self.help}


@dataclass(frozen=True)
class ConnectionType:
    name: str
    label: str
    fields: tuple[FieldSpec, ...]
    description: str = ""
    # Name of the scheme in webhooks.verifiers that checks this type's deliveries.
    webhook_scheme: str | None = None
    # Cross-field rules: values (defaults applied) → {field: [rule, ...]}.
    rules: Callable[[Mapping[str, Any]], dict[str, list[str]]] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    # The health check: network only, bounded by the context's timeout (integrations.health).
    probe: Callable[[ProbeContext], HealthResult] | None = None
    # The fields that decide where, or under which header or scheme, a secret is sent (host,
    # port, URLs, auth header...). Changing one needs every secret again (issue 12): a secret is
    # bound to the destination its owner chose. Every type declares it, () when none; None is an
    # undeclared type and the registry test fails for it.
    destination_fields: tuple[str, ...] | None = None

    @property
    def field_map(self) -> dict[str, FieldSpec]:
        return {f.name: f for f in self.fields}

    @property
    def secret_field_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields if f.secret)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "label": self.label, "description": self.description,
                "webhook_scheme": self.webhook_scheme, "fields": [f.describe() for f in self.fields],
                "destination_fields": list(self.destination_fields or ())}


# --- validators -------------------------------------------------------------------------------

# URL rules live in synthorg.url_policy, the module synthorg.http also checks every request
# with, so what a field accepts and where the service connects are decided by one parser.

def http_url(value: Any) -> None:
    """An http(s) URL both parsers read alike: no backslash, user info, whitespace, control chars.

    Only for a URL no secret is sent to; every URL that receives a secret uses
    ``https_url_unless_loopback`` (issue 12: never in clear text past this machine).
    """
    url_policy.check_url(value)


def https_url_unless_loopback(value: Any) -> None:
    """``http_url``, and https unless the host is loopback."""
    url_policy.check_https_url(value)


def port_number(value: Any) -> None:
    if not 1 <= value <= 65535:
        raise ValueError("must be a port number between 1 and 65535")


def hostname(value: Any) -> None:
    if not value or any(c.isspace() for c in value) or "/" in value:
        raise ValueError("must be a host name or IP address")


def header_name(value: Any) -> None:
    if not value or not all(c.isalnum() or c in "-_" for c in value):
        raise ValueError("must be an HTTP header name (letters, digits, '-' and '_')")
