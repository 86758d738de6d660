"""Cross-cutting models: the append-only audit log."""
from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models


class AuditEventQuerySet(models.QuerySet["AuditEvent"]):
    def update(self, **kwargs: Any) -> int:
        raise TypeError("Audit events are append-only; they cannot be updated.")


class AuditEvent(models.Model):
    """One thing that happened, by whom, to what, and how it ended. Never updated."""

    class Outcome(models.TextChoices):
        SUCCESS = "success", "Success"
        FAILURE = "failure", "Failure"
        DENIED = "denied", "Denied"

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                              on_delete=models.SET_NULL, related_name="+")
    # Kept as text too, so the record survives the user's deletion.
    actor_name = models.CharField(max_length=150)
    action = models.CharField(max_length=64, db_index=True)
    target_type = models.CharField(max_length=64, blank=True)
    target = models.CharField(max_length=255, blank=True, db_index=True)
    outcome = models.CharField(max_length=16, choices=Outcome.choices, default=Outcome.SUCCESS)
    reason = models.CharField(max_length=255, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    request_id = models.CharField(max_length=128, blank=True)
    details = models.JSONField(default=dict, blank=True)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["target_type", "target", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.action} {self.target_type}:{self.target} by {self.actor_name} ({self.outcome})"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None and not self._state.adding:
            raise TypeError("Audit events are append-only; they cannot be updated.")
        super().save(*args, **kwargs)


class ServiceHeartbeat(models.Model):
    """Written by a periodic task, so an operator (and the smoke test) sees beat and a worker alive."""

    name = models.CharField(max_length=64, unique=True)
    last_seen_at = models.DateTimeField()
    count = models.PositiveBigIntegerField(default=0)
    # Row `beat-leader`: the beat (host:pid) that last took the leadership (synthorg/beat.py).
    holder = models.CharField(max_length=200, blank=True, default="")

    def __str__(self) -> str:
        return f"{self.name} @ {self.last_seen_at:%Y-%m-%d %H:%M:%S}"
