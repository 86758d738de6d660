"""OAuth state, pending device flows and tokens. Data and invariants only: no network I/O.

Token values and PKCE verifiers are stored only as Fernet ciphertext
(`integrations.secrets.fernet`), never in a plain column.
"""
from __future__ import annotations

from django.conf import settings
from django.db import models

from integrations.models import Connection


class GrantType(models.TextChoices):
    AUTHORIZATION_CODE = "authorization_code", "Authorization code + PKCE"
    DEVICE_CODE = "device_code", "Device authorization"
    CLIENT_CREDENTIALS = "client_credentials", "Client credentials"


class OAuthState(models.Model):
    """One authorization-code attempt: random, single-use, expiring, bound to who started it."""

    class Outcome(models.TextChoices):
        PENDING = "pending", "Pending"
        IN_PROGRESS = "in_progress", "Exchanging the code"
        SUCCEEDED = "succeeded", "Connected"
        FAILED = "failed", "Failed"

    state = models.CharField(max_length=128, unique=True)
    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="oauth_states")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE,
                             related_name="+")
    scopes = models.JSONField(default=list, blank=True)
    redirect_uri = models.CharField(max_length=1000)
    issuer = models.CharField(max_length=1000, blank=True)
    # The provider's metadata advertised RFC 9207 when the flow started: a callback without
    # `iss` is then refused (§2.4), not taken as an old provider that sends none.
    iss_required = models.BooleanField(default=False)
    # {"code_verifier": ...} encrypted; empty when the connection opted out of PKCE.
    verifier_ciphertext = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(db_index=True)
    consumed_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=16, choices=Outcome.choices, default=Outcome.PENDING)
    outcome_code = models.CharField(max_length=64, blank=True)
    outcome_detail = models.CharField(max_length=500, blank=True)

    def __str__(self) -> str:
        return f"OAuth state for {self.connection_id} ({self.outcome})"


class OAuthDeviceFlow(models.Model):
    """A pending RFC 8628 device authorization, polled by short self-rescheduling tasks."""

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting for the user"
        APPROVED = "approved", "Approved"
        DENIED = "denied", "Denied"
        EXPIRED = "expired", "Expired"
        FAILED = "failed", "Failed"

    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="oauth_device_flows")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                             related_name="+")
    scopes = models.JSONField(default=list, blank=True)
    device_code_ciphertext = models.TextField()
    user_code = models.CharField(max_length=64)
    verification_uri = models.CharField(max_length=1000)
    verification_uri_complete = models.CharField(max_length=1000, blank=True)
    interval_seconds = models.PositiveIntegerField()
    expires_at = models.DateTimeField()
    next_poll_at = models.DateTimeField()
    polls = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True)
    error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"device flow {self.user_code} ({self.status})"


class OAuthToken(models.Model):
    """The live token of one oauth_app connection, with the refresh lease that fences writers.

    `version` is bumped by every claim and every write; a refresher writes only where the
    version is still the one its claim produced (compare-and-set), so a holder whose lease
    expired and was taken over cannot overwrite the newer token.
    """

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        REFRESHING = "refreshing", "Refreshing"
        REAUTHORIZATION_REQUIRED = "reauthorization_required", "Reauthorization required"
        ERROR = "error", "Error"

    connection = models.OneToOneField(Connection, on_delete=models.CASCADE, related_name="oauth_token")
    grant_type = models.CharField(max_length=32, choices=GrantType.choices)
    # {"access_token": ..., "refresh_token": ...} encrypted with the service's Fernet keyring.
    ciphertext = models.TextField()
    key_id = models.CharField(max_length=16)
    has_refresh_token = models.BooleanField(default=False)
    token_type = models.CharField(max_length=32, blank=True)
    scopes = models.JSONField(default=list, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True, db_index=True)
    status = models.CharField(max_length=32, choices=Status.choices, default=Status.ACTIVE, db_index=True)
    obtained_at = models.DateTimeField()
    last_refreshed_at = models.DateTimeField(null=True, blank=True)
    failure_count = models.PositiveIntegerField(default=0)
    last_error = models.CharField(max_length=500, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    lease_owner = models.CharField(max_length=64, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    version = models.PositiveBigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "OAuth token"
        verbose_name_plural = "OAuth tokens"

    def __str__(self) -> str:
        return f"OAuth token of connection {self.connection_id} ({self.status})"

    @property
    def refreshable(self) -> bool:
        """Whether the service can renew it without the operator."""
        return self.has_refresh_token or self.grant_type == GrantType.CLIENT_CREDENTIALS
