"""The connection type registry: one module per type, listed here."""
from __future__ import annotations

from integrations.types import database, generic_http, github, oauth_app, slack, smtp
from integrations.types.base import ConnectionType, FieldSpec

REGISTRY: dict[str, ConnectionType] = {
    module.CONNECTION_TYPE.name: module.CONNECTION_TYPE
    for module in (github, slack, smtp, database, generic_http, oauth_app)
}


def get_type(name: str) -> ConnectionType:
    """The registered type; KeyError for an unknown name."""
    return REGISTRY[name]


__all__ = ["REGISTRY", "ConnectionType", "FieldSpec", "get_type"]
