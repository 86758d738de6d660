"""Connections, their encrypted secrets, the key-check value, and shared rate-limit state.

Models hold data and invariants only: no network I/O, no side effects in save().
Secret values never live on `Connection`; only the *names* of the secret fields that
are set (`secret_fields`) do, so lists never decrypt anything.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass

from django.core.validators import RegexValidator
from django.db import models
from django.db.models.functions import Lower

CONNECTION_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
# Words used as sub-paths of /api/v1/connections/ cannot be connection names.
RESERVED_NAMES = frozenset({"types", "health", "secrets", "new", "add", "search", "import", "export"})


@dataclass(frozen=True)
class SecretRef:
    """Where a connection's secret fields live: backend, secret id, key version."""

    backend: str
    secret_id: str
    key_version: str = ""


class Connection(models.Model):
    class HealthStatus(models.TextChoices):
        UNKNOWN = "unknown", "Unknown"
        HEALTHY = "healthy", "Healthy"
        DEGRADED = "degraded", "Degraded"
        UNHEALTHY = "unhealthy", "Unhealthy"

    name = models.CharField(max_length=128, validators=[RegexValidator(CONNECTION_NAME_PATTERN)])
    connection_type = models.CharField(max_length=32, db_index=True)
    config = models.JSONField(default=dict, blank=True)
    secret_backend = models.CharField(max_length=32)
    secret_id = models.UUIDField(null=True, blank=True)
    secret_fields = models.JSONField(default=list, blank=True)

    rate_limit_rpm = models.PositiveIntegerField(default=0, help_text="requests per minute; 0 = unlimited")
    rate_limit_burst = models.PositiveIntegerField(default=0, help_text="extra requests allowed at once; 0 = none")
    rate_limit_max_concurrent = models.PositiveIntegerField(default=0, help_text="0 = unlimited")

    health_check_enabled = models.BooleanField(default=True)
    health_check_interval_seconds = models.PositiveIntegerField(null=True, blank=True)
    health_status = models.CharField(max_length=16, choices=HealthStatus.choices, default=HealthStatus.UNKNOWN)
    health_checked_at = models.DateTimeField(null=True, blank=True)
    health_consecutive_failures = models.PositiveIntegerField(default=0)
    health_last_error = models.CharField(max_length=500, blank=True)
    health_latency_ms = models.PositiveIntegerField(null=True, blank=True)
    # The prober claims a due connection with a conditional UPDATE on these (claim, then act).
    health_next_check_at = models.DateTimeField(null=True, blank=True, db_index=True)
    health_probe_lease_until = models.DateTimeField(null=True, blank=True)

    # When a static credential stops working (set by the operator, or read from GitHub's
    # `github-authentication-token-expiration` header by the health check); alerts warn ahead (issue 16).
    expires_at = models.DateTimeField(null=True, blank=True, help_text="when the credential expires, if it does")
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(Lower("name"), name="connection_name_ci_unique"),
        ]
        permissions = [("reveal_secret", "Can reveal a connection's secret field")]

    def __str__(self) -> str:
        return f"{self.name} ({self.connection_type})"

    @property
    def secret_ref(self) -> SecretRef | None:
        if self.secret_id is None and self.secret_backend != "env_var":
            return None
        return SecretRef(backend=self.secret_backend, secret_id=str(self.secret_id or self.name))

    @property
    def rate_limited(self) -> bool:
        return bool(self.rate_limit_rpm or self.rate_limit_max_concurrent)


class SecretRecord(models.Model):
    """Fernet ciphertext of a JSON object of secret fields, or under a secret manager a reference
    to it (``ref:<backend>:<version>:<path or ARN>``, `integrations.secrets.managed`). Never plaintext."""

    class Purpose(models.TextChoices):
        CREDENTIALS = "credentials", "Connection credentials"
        OAUTH_TOKEN = "oauth_token", "OAuth token"
        PROVIDER = "provider", "Provider embedded credentials"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    connection = models.ForeignKey(Connection, null=True, blank=True, on_delete=models.CASCADE,
                                   related_name="secret_records")
    purpose = models.CharField(max_length=32, choices=Purpose.choices)
    ciphertext = models.TextField()
    # Fingerprint of the key that encrypted this row, so rotation knows what is left to do.
    key_id = models.CharField(max_length=16, db_index=True)
    version = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [models.Index(fields=["connection", "purpose"])]

    def __str__(self) -> str:
        return f"secret {self.id} ({self.purpose}, v{self.version})"


class KeyCheck(models.Model):
    """A known value encrypted at first use: a keyring that cannot decrypt it must not start."""

    name = models.CharField(max_length=64, unique=True)
    ciphertext = models.TextField()
    key_id = models.CharField(max_length=16)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"key check {self.name}"


class RateLimitBucket(models.Model):
    """GCRA state for the database store of the rate limiter (one row per limit key)."""

    key = models.CharField(max_length=200, unique=True)
    # Theoretical arrival time, epoch seconds (GCRA).
    tat = models.FloatField(default=0.0)
    # A remote `Retry-After` pauses the key for every caller until then (epoch seconds).
    paused_until = models.FloatField(default=0.0)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return self.key


class ConcurrencyLease(models.Model):
    """One held `max_concurrent` slot; it expires if its holder dies without releasing it."""

    key = models.CharField(max_length=200, db_index=True)
    token = models.CharField(max_length=64, unique=True)
    expires_at = models.FloatField(db_index=True)

    def __str__(self) -> str:
        return f"{self.key}:{self.token}"


class HealthEvent(models.Model):
    """One health result and the smoothed status it led to; a short bounded history per connection."""

    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="health_events")
    checked_at = models.DateTimeField()
    result_status = models.CharField(max_length=16, choices=Connection.HealthStatus.choices)
    status = models.CharField(max_length=16, choices=Connection.HealthStatus.choices)
    previous_status = models.CharField(max_length=16, choices=Connection.HealthStatus.choices)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    detail = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-checked_at", "-id"]
        indexes = [models.Index(fields=["connection", "-checked_at"])]

    def __str__(self) -> str:
        return f"{self.connection_id} {self.previous_status}->{self.status} @ {self.checked_at:%Y-%m-%d %H:%M:%S}"


class TunnelState(models.Model):
    """The one tunnel: web processes record the desired state, the single owner runs the agent."""

    class Desired(models.TextChoices):
        RUNNING = "running", "Running"
        STOPPED = "stopped", "Stopped"

    class Status(models.TextChoices):
        STOPPED = "stopped", "Stopped"
        STARTING = "starting", "Starting"
        RUNNING = "running", "Running"
        ERROR = "error", "Error"

    desired = models.CharField(max_length=16, choices=Desired.choices, default=Desired.STOPPED)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.STOPPED)
    public_url = models.CharField(max_length=500, blank=True)
    error = models.CharField(max_length=500, blank=True)
    owner = models.CharField(max_length=200, blank=True, help_text="host:pid of the process running the agent")
    owner_heartbeat_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        permissions = [("control_tunnel", "Can start and stop the ngrok tunnel")]
        # One row, shown as the tunnel page: the sidebar says "Tunnel", not "Tunnel states".
        verbose_name = "tunnel"
        verbose_name_plural = "tunnel"

    def __str__(self) -> str:
        return f"tunnel {self.status} (desired {self.desired})"


class PendingSecretDeletion(models.Model):
    """A secret-manager secret whose owner row is gone but whose destroy failed (issue 14).

    Holds only the reference (backend and path/ARN), never secret material; the periodic task
    `integrations.secret_deletions_retry` destroys it (idempotently) and removes the row.
    """

    backend = models.CharField(max_length=32)
    location = models.CharField(max_length=2048)
    owner = models.CharField(max_length=200, help_text="what the secret belonged to, e.g. connections/12")
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    next_attempt_at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["backend", "location"], name="pending_secret_deletion_unique")]

    def __str__(self) -> str:
        return f"pending deletion {self.backend}:{self.owner}"


class MigratedSecretSource(models.Model):
    """A secret-manager copy that `secrets_migrate` moved away from but did not destroy (no
    --purge-source, or a run killed before its purge): a later run with --purge-source destroys
    it, so an interrupted migration leaves nothing behind. Reference only, no secret material."""

    backend = models.CharField(max_length=32)
    location = models.CharField(max_length=2048)
    owner = models.CharField(max_length=200)
    moved_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["backend", "location"], name="migrated_secret_source_unique")]

    def __str__(self) -> str:
        return f"migrated source {self.backend}:{self.owner}"
