"""Other apps' ciphertexts that the master-key rotation must re-encrypt too.

Apps that encrypt with `integrations.secrets.fernet` outside `SecretRecord` (provider
configs' embedded keys, OAuth tokens, previous webhook signing secrets) register a hook
in `AppConfig.ready()`; `master_key_rotate` runs them all before it re-encrypts the
key-check value, so the old key may be dropped only when everything is under the new one.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol


class RotationCounts(Protocol):
    rotated: int
    already_current: int
    failed: int


RotationHook = Callable[..., RotationCounts]  # (*, actor) -> counts
_hooks: dict[str, RotationHook] = {}


def register(name: str, hook: RotationHook) -> None:
    _hooks[name] = hook


def hooks() -> dict[str, RotationHook]:
    return dict(_hooks)


def run_all(*, actor: Any = None) -> dict[str, RotationCounts]:
    return {name: hook(actor=actor) for name, hook in _hooks.items()}
