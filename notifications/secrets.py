"""A sink's own secrets (a Standard Webhooks ``whsec_`` key, a Slack incoming-webhook URL), kept
through the configured secret backend like every other secret (issue 14): under
``encrypted_sqlite`` a Fernet token in ``secret_ciphertext`` (re-encrypted by the master-key
rotation), under a secret manager a reference to ``<prefix>/notification-sinks/<sink id>`` in the
same column, read through the per-process cache, moved by ``secrets_migrate`` (the column is
registered in `notifications.apps`) and destroyed after the sink's delete commits."""
from __future__ import annotations

from typing import Any

from integrations.secrets import managed
from notifications.models import NotificationSink


def sink_secrets_write(sink: NotificationSink, values: dict[str, str]) -> None:
    """Set the secret column on ``sink`` (the caller saves it, inside its transaction). The sink
    must be saved already: a secret manager's path is keyed by its id. The version it held is the
    check-and-set base; a copy in another backend is destroyed after commit."""
    previous = sink.secret_ciphertext
    if values:
        sink.secret_ciphertext, sink.secret_key_id = managed.seal(managed.NOTIFICATION_SINKS, sink.pk,
                                                                  dict(values), previous=previous)
    else:
        managed.destroy_after_commit([(previous, sink_secret_owner(sink.pk))])
        sink.secret_ciphertext, sink.secret_key_id = "", ""


def sink_secrets_read(sink: NotificationSink) -> dict[str, Any]:
    """The sink's secret fields; a secret manager's answer is cached per process (by version).
    Raises SecretBackendUnavailable / SecretUnavailable."""
    return managed.unseal(sink.secret_ciphertext) if sink.secret_ciphertext else {}


def sink_secrets_destroy_after_commit(sink: NotificationSink, *, actor: Any = None) -> None:
    """Once the transaction deleting ``sink`` commits, destroy its secret in a secret manager
    (a failure becomes a pending deletion, retried by the periodic task). A Fernet token goes
    with the row."""
    managed.destroy_after_commit([(sink.secret_ciphertext, sink_secret_owner(sink.pk))], actor=actor)


def sink_secret_owner(sink_id: Any) -> str:
    return f"{managed.NOTIFICATION_SINKS}/{sink_id}"
