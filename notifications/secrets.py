"""A sink's own secrets (a Standard Webhooks ``whsec_`` key, a Slack incoming-webhook URL),
Fernet-encrypted with the service's keyring like every other secret and re-encrypted by the
master-key rotation (registered in `notifications.apps`)."""
from __future__ import annotations

from typing import Any

from integrations.secrets import fernet
from notifications.models import NotificationSink


def sink_secrets_write(sink: NotificationSink, values: dict[str, str]) -> None:
    """Set the ciphertext fields on ``sink`` (the caller saves it)."""
    if values:
        sink.secret_ciphertext, sink.secret_key_id = fernet.encrypt(dict(values))
    else:
        sink.secret_ciphertext, sink.secret_key_id = "", ""


def sink_secrets_read(sink: NotificationSink) -> dict[str, Any]:
    return fernet.decrypt(sink.secret_ciphertext) if sink.secret_ciphertext else {}
