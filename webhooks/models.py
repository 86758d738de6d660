"""Deliveries (the activity log and the replay authority), rejection counters, signing-secret
rotation state, the message-bus store, trigger rules and workflow runs.

Models hold data and invariants only; the receiver's steps live in ``webhooks.services``.
"""
from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import models

from synthorg.ids import uuid7
from synthorg.json_values import unstorable_path
from webhooks.conditions import validate_conditions


class WebhookEndpoint(models.Model):
    """Per-connection webhook state that is not a connection field: the previous signing
    secret kept valid during a rotation, and the retention override."""

    connection = models.OneToOneField("integrations.Connection", on_delete=models.CASCADE,
                                      related_name="webhook_endpoint")
    # Fernet ciphertext of {"signing_secret": ...}; never plaintext.
    previous_secret_ciphertext = models.TextField(blank=True)
    previous_secret_key_id = models.CharField(max_length=16, blank=True)
    previous_valid_until = models.DateTimeField(null=True, blank=True)
    rotated_at = models.DateTimeField(null=True, blank=True)
    # None: integrations.webhooks.receipt_retention_days; 0: keep.
    retention_days = models.PositiveIntegerField(null=True, blank=True)

    def __str__(self) -> str:
        return f"webhook endpoint of connection {self.connection_id}"


class Delivery(models.Model):
    """One accepted delivery. The unique (connection, replay_key) is the replay authority,
    shared by every web process and durable across restarts."""

    class Outcome(models.TextChoices):
        ACCEPTED = "accepted", "Accepted"
        ACCEPTED_UNVERIFIED = "accepted_unverified", "Accepted without signature check"

    class PublishState(models.TextChoices):
        PENDING = "pending", "Waiting for publication"
        PUBLISHING = "publishing", "Being published"
        PUBLISHED = "published", "Published"

    # Time-ordered (synthorg.ids): new keys append to the unique index instead of landing on
    # a random page of it.
    event_id = models.UUIDField(default=uuid7, unique=True, editable=False)
    # No single-column index on connection: the unique (connection, replay_key) and the
    # (connection, -received_at) index both start with it, and every index costs each insert.
    # No database constraint either (issue 15 §7): PostgreSQL checks a foreign key by locking
    # the connection's row FOR KEY SHARE, and two workers inserting for the same connection at
    # once then share the lock through a MultiXact: about 60-80 us of wall time on every
    # insert. Django still cascades a connection's delete to its deliveries (its collector
    # never relied on the constraint); a delivery stored by a request in flight while its
    # connection is deleted is removed after that commit (`webhooks.signals`) and, should one
    # still slip through, by the prune task (`services.deliveries_prune`).
    connection = models.ForeignKey("integrations.Connection", on_delete=models.CASCADE, related_name="+",
                                   db_index=False, db_constraint=False)
    connection_name = models.CharField(max_length=128)
    connection_type = models.CharField(max_length=32)
    # Unindexed: no query filters or orders on it (the admin's search is a substring match).
    event_type = models.CharField(max_length=200)
    event_name = models.CharField(max_length=200, blank=True)
    path_event_type = models.CharField(max_length=100)
    provider_delivery_id = models.CharField(max_length=200, blank=True)
    replay_key = models.CharField(max_length=64)
    # The signed timestamp, when the scheme signs one: the replay horizon is then the window.
    signed_timestamp = models.BigIntegerField(null=True, blank=True)
    matched_secret = models.CharField(max_length=16, blank=True, help_text="current, previous or none")
    outcome = models.CharField(max_length=32, choices=Outcome.choices, default=Outcome.ACCEPTED)
    headers = models.JSONField(default=dict, blank=True)
    content_type = models.CharField(max_length=100, blank=True)
    # The raw bytes as received: the authority on what the sender sent.
    body = models.BinaryField()
    # The parsed body as PostgreSQL can store it: NUL and lone surrogates written as their
    # \uXXXX escapes, numbers beyond a double kept as text (`webhooks.payloads`).
    payload = models.JSONField(default=dict)
    # True when `payload` differs from what the sender meant; the body is then read again.
    payload_escaped = models.BooleanField(default=False)
    remote_ip = models.GenericIPAddressField(null=True, blank=True)
    duplicates = models.PositiveIntegerField(default=0)
    received_at = models.DateTimeField(db_index=True)
    publish_state = models.CharField(max_length=16, choices=PublishState.choices, default=PublishState.PENDING)
    publish_claimed_at = models.DateTimeField(null=True, blank=True)
    publish_attempts = models.PositiveIntegerField(default=0)
    published_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-received_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["connection", "replay_key"], name="webhooks_delivery_replay_unique"),
        ]
        indexes = [
            models.Index(fields=["connection", "-received_at"]),
            models.Index(fields=["publish_state", "received_at"]),
        ]
        permissions = [("view_delivery_payload", "Can view webhook delivery payloads")]
        verbose_name_plural = "deliveries"

    def __str__(self) -> str:
        return f"{self.connection_name}/{self.event_type} {self.event_id}"


class RejectionCount(models.Model):
    """Rejected requests counted per connection name, reason and minute (never their bodies).

    Unknown connection names are counted under "" so a flood of invented names cannot grow
    this table faster than one row per reason and minute."""

    connection_name = models.CharField(max_length=128, blank=True)
    reason = models.CharField(max_length=64)
    minute = models.DateTimeField()
    count = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["connection_name", "reason", "minute"], name="webhooks_rejection_minute"),
        ]
        indexes = [models.Index(fields=["minute"])]

    def __str__(self) -> str:
        return f"{self.connection_name or '(unknown)'} {self.reason} @ {self.minute:%Y-%m-%d %H:%M}: {self.count}"


class ReceiptSample(models.Model):
    """A bounded sample of rejected and duplicate requests for the activity log (no body)."""

    connection = models.ForeignKey("integrations.Connection", null=True, blank=True, on_delete=models.CASCADE,
                                   related_name="+")
    connection_name = models.CharField(max_length=128, blank=True)
    outcome = models.CharField(max_length=32)  # rejected | duplicate
    reason = models.CharField(max_length=64)
    status_code = models.PositiveSmallIntegerField()
    path_event_type = models.CharField(max_length=100, blank=True)
    delivery = models.ForeignKey(Delivery, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    remote_ip = models.GenericIPAddressField(null=True, blank=True)
    received_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-received_at", "-id"]
        indexes = [models.Index(fields=["connection", "-received_at"])]

    def __str__(self) -> str:
        return f"{self.connection_name} {self.outcome} {self.reason}"


class BusMessage(models.Model):
    """A message published on a bus channel, idempotent by (channel, event id)."""

    channel = models.CharField(max_length=64)
    event_id = models.CharField(max_length=64)
    payload = models.JSONField(default=dict)
    published_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-published_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["channel", "event_id"], name="bus_message_unique")]

    def __str__(self) -> str:
        return f"#{self.channel} {self.event_id}"


class BusDelivery(models.Model):
    """Proof that one subscriber handled one message; written in the subscriber's own
    transaction, so a crash before commit leaves no row and the event is handed again."""

    message = models.ForeignKey(BusMessage, on_delete=models.CASCADE, related_name="deliveries")
    subscriber = models.CharField(max_length=100)
    delivered_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["message", "subscriber"], name="bus_delivery_once")]

    def __str__(self) -> str:
        return f"{self.subscriber} <- {self.message_id}"


class TriggerRule(models.Model):
    """Fires a workflow for matching #webhooks events. ``conditions`` are data, never code."""

    name = models.CharField(max_length=100, unique=True)
    enabled = models.BooleanField(default=True)
    connection = models.ForeignKey("integrations.Connection", null=True, blank=True, on_delete=models.CASCADE,
                                   related_name="+", help_text="empty: any connection")
    event_type = models.CharField(max_length=200, help_text="exact name or glob, e.g. pull_request.*")
    conditions = models.JSONField(default=list, blank=True)
    workflow = models.CharField(max_length=100)
    parameters = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        from webhooks.workflows import validate_workflow

        problems: dict[str, Any] = {}
        try:
            validate_conditions(self.conditions)
        except ValueError as exc:
            problems["conditions"] = [str(exc)]
        try:
            validate_workflow(self.workflow, self.parameters)
        except ValueError as exc:
            problems["workflow" if "workflow" in str(exc) else "parameters"] = [str(exc)]
        if not self.event_type or any(c.isspace() for c in self.event_type):
            problems["event_type"] = ["must be an event name or glob without spaces"]
        for name in ("conditions", "parameters"):
            # The API's JSON step refuses these already; the admin's JSON fields do not.
            found = unstorable_path(getattr(self, name), root=name)
            if found is not None:
                problems[name] = [f"{found[0]}: {found[1]}"]
        if problems:
            raise ValidationError(problems)


class WorkflowRun(models.Model):
    """One firing of a rule for one event; unique per (rule, event) so a rule fires once."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    rule = models.ForeignKey(TriggerRule, null=True, on_delete=models.SET_NULL, related_name="runs")
    rule_name = models.CharField(max_length=100)
    workflow = models.CharField(max_length=100)
    parameters = models.JSONField(default=dict, blank=True)
    event_id = models.UUIDField()
    delivery = models.ForeignKey(Delivery, null=True, blank=True, on_delete=models.SET_NULL, related_name="runs")
    connection_name = models.CharField(max_length=128, blank=True)
    event_type = models.CharField(max_length=200, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True)
    attempts = models.PositiveIntegerField(default=0)
    error = models.CharField(max_length=500, blank=True)
    result = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["rule_name", "event_id"], name="workflow_run_once")]

    def __str__(self) -> str:
        return f"{self.rule_name} #{self.pk} {self.status}"
