"""What depends on a connection in other apps, registered by those apps in `AppConfig.ready()`.

`integrations` never imports another app's models: an app that protects connections
(MCP installations, provider configs) registers a counter and a remover here, so delete
can refuse while dependants exist (409 naming them) or, with force, remove them through
that app's own service.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Dependant:
    label: str  # e.g. "MCP installations"
    list_names: Callable[[Any], list[str]]  # connection → names of dependants
    remove: Callable[..., None]  # (connection, *, actor, request) → None


_registry: dict[str, Dependant] = {}


def register(key: str, dependant: Dependant) -> None:
    _registry[key] = dependant


def registered() -> list[Dependant]:
    return list(_registry.values())


# --- destination changes ----------------------------------------------------------------------
# What other apps hold that was obtained for a connection's old destination (OAuth tokens for a
# token_url) must not follow the connection to a new one (issue 12). `connection_update` calls
# every hook inside its transaction, after the new config is saved, with the names of the
# destination fields that changed; a hook drops what it holds and writes its own audit event.

DestinationHook = Callable[..., None]  # (connection, *, changed: list[str], actor, request) → None

_destination_hooks: dict[str, DestinationHook] = {}


def register_destination_change(key: str, hook: DestinationHook) -> None:
    _destination_hooks[key] = hook


def destination_change_hooks() -> list[DestinationHook]:
    return list(_destination_hooks.values())
