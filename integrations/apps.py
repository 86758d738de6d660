from __future__ import annotations

from django.apps import AppConfig


class IntegrationsConfig(AppConfig):
    name = "integrations"
    verbose_name = "Integrations"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from integrations import (
            checks,  # noqa: F401  (registers checks)
            generation,
        )
        from integrations.dashboard import connections_card, tunnel_card
        from integrations.models import Connection, SecretRecord
        from synthorg import dashboard, periodic

        # Readers cache connections under the generation stamp (webhooks.receiver); a health
        # probe's results are not part of what they read.
        generation.track(Connection, ignore=frozenset(
            {field.name for field in Connection._meta.fields if field.name.startswith("health_")} | {"updated_at"}))
        generation.track(SecretRecord)
        dashboard.register("connections", connections_card)
        dashboard.register("tunnel", tunnel_card)

        # The sweep runs often; each connection is probed on its own interval (integrations.prober).
        # Secret-manager secrets whose destroy failed at delete time (issue 14).
        periodic.register("secret-deletions-retry", "integrations.secret_deletions_retry", lambda cfg: 300)
        periodic.register("health-sweep", "integrations.health_sweep",
                          lambda cfg: cfg.integrations.health.sweep_interval_seconds)
