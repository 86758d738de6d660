"""`encrypted_sqlite`: Fernet ciphertext in the service's own database (SQLite or PostgreSQL).

One `SecretRecord` row per secret set holds a MultiFernet token of the JSON object of
fields; `key_id` fingerprints the key that encrypted it, so `rotate_master_key` knows what
is left. A key-check value (`KeyCheck`) is written at first use: a keyring that cannot
decrypt it stops startup, so a mistyped key never writes new secrets beside old ones.
"""
from __future__ import annotations

import hashlib
import json
import logging
import uuid

from cryptography.fernet import Fernet, InvalidToken

from integrations.models import Connection, KeyCheck, SecretRecord, SecretRef
from integrations.secrets.base import SecretUnavailable
from integrations.secrets.keys import Keyring, MasterKeyError, load_keyring

logger = logging.getLogger(__name__)

KEY_CHECK_NAME = "master"
KEY_CHECK_PLAINTEXT = b"synthorg-key-check-v1"


def key_fingerprint(fernet: Fernet) -> str:
    # Fernet keeps the signing and encryption keys; hash both, never expose either.
    raw = fernet._signing_key + fernet._encryption_key
    return hashlib.sha256(raw).hexdigest()[:16]


def keyring() -> Keyring:
    try:
        return load_keyring()
    except MasterKeyError as exc:
        raise SecretUnavailable(f"Secrets cannot be used: {exc}.", code="master_key_missing") from None


def encrypt(data: dict[str, str], ring: Keyring | None = None) -> tuple[str, str]:
    ring = ring or keyring()
    ensure_key_check(ring)
    token = ring.current.encrypt(json.dumps(data, sort_keys=True).encode("utf-8"))
    return token.decode("ascii"), key_fingerprint(ring.current)


def decrypt(ciphertext: str, ring: Keyring | None = None) -> dict[str, str]:
    ring = ring or keyring()
    try:
        plaintext = ring.multi.decrypt(ciphertext.encode("ascii"))
        data = json.loads(plaintext)
    except (InvalidToken, ValueError, UnicodeError):
        raise SecretUnavailable(
            "Stored secrets cannot be decrypted: the master key is wrong or the row is corrupt.",
            code="secret_decrypt_failed",
        ) from None
    if not isinstance(data, dict):
        raise SecretUnavailable("Stored secrets are corrupt.", code="secret_decrypt_failed")
    return data


def ensure_key_check(ring: Keyring) -> None:
    if not KeyCheck.objects.filter(name=KEY_CHECK_NAME).exists():
        KeyCheck.objects.get_or_create(
            name=KEY_CHECK_NAME,
            defaults={"ciphertext": ring.current.encrypt(KEY_CHECK_PLAINTEXT).decode("ascii"),
                      "key_id": key_fingerprint(ring.current)},
        )


def key_check_passes(ring: Keyring) -> bool | None:
    """None when no key-check value exists yet (fresh install)."""
    check = KeyCheck.objects.filter(name=KEY_CHECK_NAME).first()
    if check is None:
        return None
    try:
        return ring.multi.decrypt(check.ciphertext.encode("ascii")) == KEY_CHECK_PLAINTEXT
    except InvalidToken:
        return False


def key_check_reencrypt(ring: Keyring) -> None:
    KeyCheck.objects.filter(name=KEY_CHECK_NAME).update(
        ciphertext=ring.current.encrypt(KEY_CHECK_PLAINTEXT).decode("ascii"),
        key_id=key_fingerprint(ring.current),
    )


class EncryptedDatabaseBackend:
    name = "encrypted_sqlite"
    read_only = False

    def store(self, *, connection: Connection, values: dict[str, str], ref: SecretRef | None,
              purpose: str = SecretRecord.Purpose.CREDENTIALS) -> SecretRef:
        ciphertext, key_id = encrypt(values)
        if ref is not None:
            record = SecretRecord.objects.select_for_update().filter(pk=ref.secret_id).first()
            if record is not None:
                record.ciphertext, record.key_id, record.version = ciphertext, key_id, record.version + 1
                record.save(update_fields=["ciphertext", "key_id", "version", "updated_at"])
                return SecretRef(self.name, str(record.pk), key_id)
        record = SecretRecord.objects.create(connection=connection, purpose=purpose,
                                             ciphertext=ciphertext, key_id=key_id)
        return SecretRef(self.name, str(record.pk), key_id)

    def retrieve(self, *, connection: Connection, ref: SecretRef, fields: tuple[str, ...] = ()) -> dict[str, str]:
        try:
            record = SecretRecord.objects.get(pk=uuid.UUID(ref.secret_id))
        except (SecretRecord.DoesNotExist, ValueError):
            raise SecretUnavailable("The secret record is missing.", code="secret_missing") from None
        if record.ciphertext.startswith("ref:"):  # moved to a secret manager (secrets_migrate)
            from integrations.secrets import managed

            return managed.read(record.ciphertext)
        return decrypt(record.ciphertext)

    def delete(self, *, ref: SecretRef) -> None:
        SecretRecord.objects.filter(pk=ref.secret_id).delete()

    def rotate(self, *, ref: SecretRef) -> bool:
        ring = keyring()
        current = key_fingerprint(ring.current)
        record = SecretRecord.objects.select_for_update().get(pk=ref.secret_id)
        if record.key_id == current:
            return False
        record.ciphertext = ring.multi.rotate(record.ciphertext.encode("ascii")).decode("ascii")
        record.key_id = current
        record.save(update_fields=["ciphertext", "key_id", "updated_at"])
        return True

