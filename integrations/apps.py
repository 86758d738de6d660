from __future__ import annotations

from django.apps import AppConfig


class IntegrationsConfig(AppConfig):
    name = "integrations"
    verbose_name = "Integrations"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from integrations import checks  # noqa: F401  (registers checks)
        from integrations.dashboard import connections_card, tunnel_card
        from synthorg import dashboard, periodic

        dashboard.register("connections", connections_card)
        dashboard.register("tunnel", tunnel_card)

        # The sweep runs often; each connection is probed on its own interval (integrations.prober).
        periodic.register("health-sweep", "integrations.health_sweep",
                          lambda cfg: cfg.integrations.health.sweep_interval_seconds)
