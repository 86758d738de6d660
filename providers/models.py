"""`ProviderConfig`: an LLM provider endpoint and where its credentials come from.

The target shape references a connection (`connection`, exposed as `connection_name`) whose
credentials are resolved at run time. The deprecated shape embeds credentials on the row;
those are kept only as Fernet ciphertext (`embedded_ciphertext`) plus the *names* of the
fields that are set (`embedded_fields`), so lists and responses never decrypt anything.
"""
from __future__ import annotations

from django.core.validators import RegexValidator
from django.db import models
from django.db.models.functions import Lower

from integrations.models import CONNECTION_NAME_PATTERN

# Same rule as connection names: the name appears in URLs.
PROVIDER_NAME_PATTERN = CONNECTION_NAME_PATTERN

# The deprecated embedded credential fields. Only `api_key` is still used at run time; the
# OAuth client fields are kept so an operator can move them into an `oauth_app` connection.
EMBEDDED_SECRET_FIELDS = ("api_key", "oauth_client_secret")
EMBEDDED_PLAIN_FIELDS = ("oauth_client_id", "oauth_token_url", "oauth_scopes")
EMBEDDED_FIELDS = (*EMBEDDED_SECRET_FIELDS, *EMBEDDED_PLAIN_FIELDS)


class ProviderConfig(models.Model):
    class Driver(models.TextChoices):
        # How a client talks to the provider; the credential kind comes from the source, not the driver.
        OPENAI = "openai", "OpenAI"
        ANTHROPIC = "anthropic", "Anthropic"
        GOOGLE = "google", "Google (Gemini)"
        AZURE_OPENAI = "azure_openai", "Azure OpenAI"
        OLLAMA = "ollama", "Ollama"
        GENERIC = "generic", "Generic (OpenAI-compatible)"

    name = models.CharField(max_length=128, validators=[RegexValidator(PROVIDER_NAME_PATTERN)])
    driver = models.CharField(max_length=32, choices=Driver.choices)
    base_url = models.CharField(max_length=2048, blank=True)
    model = models.CharField(max_length=256, blank=True)
    # PROTECT: a connection in use cannot vanish under a provider; integrations.connection_delete
    # asks this app (through integrations.dependants) to remove providers first when forced.
    connection = models.ForeignKey("integrations.Connection", null=True, blank=True, on_delete=models.PROTECT,
                                   related_name="+")
    # A base_url outside the connection's own URL that a holder of integrations.reveal_secret (or
    # a command) chose: only then does resolve_credentials hand the connection's credential out
    # for it. Lapses when the connection moves (providers.destination, issue 12).
    binding_approved = models.BooleanField(default=False)
    # DEPRECATED embedded credentials: Fernet token of a JSON object of EMBEDDED_FIELDS.
    embedded_ciphertext = models.TextField(blank=True, default="")
    embedded_key_id = models.CharField(max_length=16, blank=True, default="", db_index=True)
    embedded_fields = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "provider config"
        constraints = [
            models.UniqueConstraint(Lower("name"), name="provider_name_ci_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.driver})"

    @property
    def has_embedded_credentials(self) -> bool:
        return bool(self.embedded_fields)
