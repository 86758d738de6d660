"""The master keyring: the current Fernet key plus older keys still accepted for decryption.

The current key comes from the env var named by ``secret_backend.master_key_env``
(default ``SYNTHORG_MASTER_KEY``, or ``<NAME>_FILE``); older keys, comma separated, from
``secret_backend.previous_master_keys_env``. Only the development mode of ``make run``
(``SYNTHORG_DEV=1``) falls back to a key generated into ``var/dev-master.key``; anywhere
else a missing or malformed key is a startup error, never a plaintext fallback.
"""
from __future__ import annotations

import base64
import binascii
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.fernet import Fernet, MultiFernet
from django.conf import settings

from synthorg.config import get_config

DEV_KEY_FILENAME = "dev-master.key"
HOW_TO_GENERATE = (
    "generate one with `python -c 'from cryptography.fernet import Fernet; "
    "print(Fernet.generate_key().decode())'`"
)


class MasterKeyError(Exception):
    """The keyring is missing or unusable; the message says how to fix it (never the key)."""


@dataclass(frozen=True)
class Keyring:
    current: Fernet
    previous: tuple[Fernet, ...]
    env_name: str

    @property
    def multi(self) -> MultiFernet:
        return MultiFernet([self.current, *self.previous])


def dev_key_path() -> Path:
    return Path(settings.VAR_DIR) / DEV_KEY_FILENAME


def generate_dev_key() -> bool:
    """Create var/dev-master.key exclusively (only `make run` calls this). True if created."""
    path = dev_key_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "wb") as handle:
        handle.write(Fernet.generate_key())
    return True


def _read_env(name: str) -> str | None:
    file_name = os.environ.get(f"{name}_FILE")
    if file_name:
        try:
            return Path(file_name).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise MasterKeyError(f"{name}_FILE cannot be read ({exc.strerror})") from None
    value = os.environ.get(name)
    return value.strip() if value else None


def _fernet(raw: str, source: str) -> Fernet:
    try:
        decoded = base64.urlsafe_b64decode(raw.encode("ascii"))
        if len(decoded) != 32:
            raise ValueError
        return Fernet(raw.encode("ascii"))
    except (ValueError, binascii.Error, UnicodeEncodeError):
        raise MasterKeyError(
            f"{source} is malformed: a master key is 32 url-safe base64-encoded bytes; {HOW_TO_GENERATE}"
        ) from None


def load_keyring() -> Keyring:
    backend = get_config().integrations.secret_backend
    env_name = backend.effective_master_key_env
    raw = _read_env(env_name)
    source = env_name
    if not raw and settings.SYNTHORG_DEV and dev_key_path().exists():
        raw = dev_key_path().read_text(encoding="ascii").strip()
        source = str(dev_key_path())
    if not raw:
        raise MasterKeyError(f"{env_name} is not set; {HOW_TO_GENERATE} and export {env_name}")
    current = _fernet(raw, source)
    previous_raw = _read_env(backend.previous_master_keys_env) or ""
    previous = tuple(
        _fernet(item.strip(), backend.previous_master_keys_env)
        for item in previous_raw.split(",") if item.strip()
    )
    return Keyring(current=current, previous=previous, env_name=env_name)
