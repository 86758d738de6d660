"""Alerts: where they go (sinks), what raises them (rules), what is wrong (problems), and the
outbox of messages to send (alerts) with every attempt.

Models hold data and invariants only. An `Alert` row is written in the same transaction as
the state change that caused it (`notifications.services`), and its uuid is the id every
sink sees (`Message-ID`, `webhook-id`, Slack metadata), so a resend after a lost answer can
be recognised by the receiver.
"""
from __future__ import annotations

from django.db import models
from django.db.models import Q

from synthorg.ids import uuid7


class NotificationSink(models.Model):
    class Kind(models.TextChoices):
        EMAIL = "email", "Email (smtp connection)"
        SLACK = "slack", "Slack (slack connection, chat.postMessage)"
        SLACK_WEBHOOK = "slack_webhook", "Slack incoming webhook (URL stored as a secret)"
        WEBHOOK = "webhook", "Outbound webhook (generic_http connection, Standard Webhooks)"

    name = models.CharField(max_length=128, unique=True)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    # The connection whose destination and credentials the sink uses. A deleted connection
    # leaves the sink without one (sends fail permanently until it is pointed elsewhere).
    connection = models.ForeignKey("integrations.Connection", null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    # Non-secret settings: email {"to": [...], "from_address": ...}, slack {"channel": ...}.
    settings = models.JSONField(default=dict, blank=True)
    # {"signing_secret": "whsec_..."} or {"webhook_url": ...} through the configured secret backend
    # (notifications.secrets): a Fernet token, or a secret manager's `ref:...`; never plaintext.
    secret_ciphertext = models.TextField(blank=True)
    secret_key_id = models.CharField(max_length=16, blank=True)
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        permissions = [("test_notificationsink", "Can send a test alert through a sink")]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind})"


class AlertRule(models.Model):
    name = models.CharField(max_length=128, unique=True)
    events = models.JSONField(default=list, help_text="event names (see the README's Alerts section)")
    connection_types = models.JSONField(default=list, blank=True, help_text="empty: every type")
    connections = models.ManyToManyField("integrations.Connection", blank=True, related_name="+",
                                         help_text="empty: every connection")
    sinks = models.ManyToManyField(NotificationSink, blank=True, related_name="rules")
    # None: no reminders (the default). Otherwise an open, unacknowledged problem is announced
    # again every this many seconds.
    reminder_interval_seconds = models.PositiveIntegerField(null=True, blank=True)
    # Thresholds of the evaluated events, e.g. {"refresh_failing_minutes": 15}; see notifications.events.
    params = models.JSONField(default=dict, blank=True)
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Problem(models.Model):
    class State(models.TextChoices):
        # Seen but not yet announced: a condition that must last N minutes first.
        PENDING = "pending", "Pending"
        OPEN = "open", "Open"
        RESOLVED = "resolved", "Resolved"

    rule = models.ForeignKey(AlertRule, on_delete=models.CASCADE, related_name="problems")
    event = models.CharField(max_length=64, db_index=True)
    subject = models.CharField(max_length=200)
    title = models.CharField(max_length=300)
    connection = models.ForeignKey("integrations.Connection", null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    connection_name = models.CharField(max_length=128, blank=True)
    state = models.CharField(max_length=16, choices=State.choices, default=State.OPEN, db_index=True)
    details = models.JSONField(default=dict, blank=True)
    first_seen_at = models.DateTimeField()
    opened_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.CharField(max_length=150, blank=True)
    last_reminded_at = models.DateTimeField(null=True, blank=True)
    # [{"at": iso, "what": "opened"|"resolved"|"acknowledged"|"reminded"|"seen", ...}], bounded.
    history = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["-first_seen_at", "-id"]
        constraints = [
            # One live problem per (rule, subject): the database decides, so two workers
            # seeing the same transition cannot open it twice.
            models.UniqueConstraint(fields=["rule", "subject"], condition=~Q(state="resolved"),
                                    name="problem_one_live_per_rule_subject"),
        ]
        indexes = [models.Index(fields=["state", "-first_seen_at"])]

    def __str__(self) -> str:
        return f"{self.title} ({self.state})"

    @property
    def acknowledged(self) -> bool:
        return self.acknowledged_at is not None


class Alert(models.Model):
    """One message to one sink: the outbox row, sent by a task, re-sent by the sweep."""

    class Kind(models.TextChoices):
        OPENED = "opened", "Problem opened"
        RESOLVED = "resolved", "Problem resolved"
        REMINDER = "reminder", "Reminder"
        DIGEST = "digest", "Digest of several alerts"
        TEST = "test", "Test alert"

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting to be sent"
        SENDING = "sending", "Being sent"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed (gave up)"
        COALESCED = "coalesced", "Sent within a digest"

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    problem = models.ForeignKey(Problem, null=True, blank=True, on_delete=models.CASCADE, related_name="alerts")
    sink = models.ForeignKey(NotificationSink, on_delete=models.CASCADE, related_name="alerts")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    digest = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="items")
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    # A sender owns a claimed alert until then; past it, the sweep takes it over (a dead worker).
    claimed_until = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField()
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["status", "next_attempt_at"]),
                   models.Index(fields=["sink", "status"])]

    def __str__(self) -> str:
        return f"alert {self.id} ({self.kind}, {self.status})"


class AlertAttempt(models.Model):
    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="attempt_log")
    number = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=16)  # sent | transient | permanent
    status_code = models.PositiveIntegerField(null=True, blank=True)
    retry_after = models.FloatField(null=True, blank=True)
    error = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["alert", "number"]

    def __str__(self) -> str:
        return f"attempt {self.number} of {self.alert_id}: {self.outcome}"

