"""Deliveries follow their connection out (the delivery table has no foreign-key constraint)."""
from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models.signals import post_delete

from integrations.models import Connection


def _connection_deleted(sender: type[Connection], instance: Connection, **kwargs: Any) -> None:
    # Django's cascade deleted the deliveries it saw; a request in flight may have stored one
    # since. After the commit (the delete may still roll back), those go too.
    connection_id = instance.pk

    def sweep() -> None:
        from webhooks.services import deliveries_orphaned_delete

        deliveries_orphaned_delete(connection_id=connection_id)

    # robust: the delete is committed; a sweep that fails (database gone) is logged, not raised
    # into the caller's answer, and the hourly prune removes what it missed.
    transaction.on_commit(sweep, robust=True)


def connect() -> None:
    post_delete.connect(_connection_deleted, sender=Connection, dispatch_uid="webhooks.connection_deleted")
