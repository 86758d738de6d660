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


class Counts:
    def __init__(self) -> None:
        self.rotated = 0
        self.already_current = 0
        self.failed = 0


def rotate_field(model: Any, field: str, key_field: str | None = None) -> Counts:
    """Re-encrypt one ciphertext column of a model under the current key, row by row.

    For tables that keep no key fingerprint: a token the current key alone decrypts is
    already current; anything else is rotated through the whole keyring (MultiFernet).
    Idempotent and resumable; a row no key can read is counted and left as it is.
    """
    from cryptography.fernet import InvalidToken
    from django.db import transaction

    from integrations.generation import connections_changed
    from integrations.secrets.fernet import key_fingerprint, keyring

    ring = keyring()
    current_id = key_fingerprint(ring.current)
    counts = Counts()
    # References to a secret manager hold no ciphertext: nothing for the master key to do.
    pks = list(model.objects.exclude(**{field: ""}).exclude(**{f"{field}__startswith": "ref:"})
               .order_by("pk").values_list("pk", flat=True))
    for pk in pks:
        with transaction.atomic():
            row = model.objects.select_for_update().filter(pk=pk).first()
            token = getattr(row, field, "") if row is not None else ""
            if not token:
                continue
            try:
                ring.current.decrypt(token.encode("ascii"))
                if key_field and getattr(row, key_field) != current_id:
                    model.objects.filter(pk=pk).update(**{key_field: current_id})
                counts.already_current += 1
                continue
            except InvalidToken:
                pass
            try:
                rotated = ring.multi.rotate(token.encode("ascii")).decode("ascii")
            except InvalidToken:
                counts.failed += 1
                continue
            model.objects.filter(pk=pk).update(**{field: rotated, **({key_field: current_id} if key_field else {})})
            counts.rotated += 1
    if counts.rotated:
        # Bulk updates send no signals; copies cached under the old ciphertext must go.
        connections_changed()
    return counts


def rotate_fields(*specs: tuple[Any, ...]) -> Counts:
    """Each spec: (model, ciphertext field[, key fingerprint field])."""
    total = Counts()
    for spec in specs:
        counts = rotate_field(*spec)
        total.rotated += counts.rotated
        total.already_current += counts.already_current
        total.failed += counts.failed
    return total
