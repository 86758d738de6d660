"""Connection credentials in a secret manager: the `SecretBackend` of `secret_manager_vault`
and `secret_manager_cloud_a`.

The connection's `SecretRecord` row stays (so everything that joins on it, like the receiver's
one query, works unchanged) but holds a reference instead of a ciphertext; the secret itself is
``<prefix>/connections/<connection id>`` in the manager.
"""
from __future__ import annotations

import uuid

from integrations.models import Connection, SecretRecord, SecretRef
from integrations.secrets import managed
from integrations.secrets.base import SecretUnavailable


class ManagedBackend:
    read_only = False

    def __init__(self, name: str) -> None:
        self.name = name

    def store(self, *, connection: Connection, values: dict[str, str], ref: SecretRef | None,
              purpose: str = SecretRecord.Purpose.CREDENTIALS) -> SecretRef:
        record = None
        if ref is not None:
            record = SecretRecord.objects.select_for_update().filter(pk=ref.secret_id).first()
        stored = record.ciphertext if record is not None else ""
        previous = managed.parse(stored) if managed.is_ref(stored) else None
        new = managed.write(self.name, managed.CONNECTIONS, connection.pk, values, previous=previous)
        if previous is not None and previous.backend != self.name:
            managed.destroy_after_commit([(stored, f"{managed.CONNECTIONS}/{connection.pk}")])
        if record is not None:
            # The reference moves to the new version only now, after the write succeeded.
            record.ciphertext, record.key_id, record.version = str(new), "", record.version + 1
            record.save(update_fields=["ciphertext", "key_id", "version", "updated_at"])
        else:
            record = SecretRecord.objects.create(connection=connection, purpose=purpose, ciphertext=str(new), key_id="")
        return SecretRef(self.name, str(record.pk))

    def retrieve(self, *, connection: Connection, ref: SecretRef, fields: tuple[str, ...] = ()) -> dict[str, str]:
        try:
            record = SecretRecord.objects.get(pk=uuid.UUID(ref.secret_id))
        except (SecretRecord.DoesNotExist, ValueError):
            raise SecretUnavailable("The secret record is missing.", code="secret_missing") from None
        return managed.unseal(record.ciphertext)

    def delete(self, *, ref: SecretRef) -> None:
        record = SecretRecord.objects.filter(pk=ref.secret_id).first()
        if record is not None:
            managed.destroy_after_commit([(record.ciphertext, f"{managed.CONNECTIONS}/{record.connection_id}")])
            record.delete()

    def rotate(self, *, ref: SecretRef) -> bool:
        return False  # the master key encrypts nothing here
