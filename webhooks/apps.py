from __future__ import annotations

from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "webhooks"
    verbose_name = "Webhooks"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from synthorg import bus, periodic
        from webhooks import checks  # noqa: F401  (registers checks)
        from webhooks.bus_store import DatabaseBusStore
        from webhooks.services import strategy_register

        bus.set_store(DatabaseBusStore())

        from synthorg import dashboard
        from webhooks.dashboard import webhooks_card

        dashboard.register("webhooks", webhooks_card)

        from integrations import generation
        from integrations.secrets import rotation
        from webhooks.models import WebhookEndpoint

        generation.track(WebhookEndpoint)
        # Previous signing secrets kept during a rotation window are re-encrypted with the rest.
        rotation.register("webhooks", lambda *, actor=None: rotation.rotate_fields(
            (WebhookEndpoint, "previous_secret_ciphertext", "previous_secret_key_id")))
        from integrations.secrets import managed

        # Under a secret manager the previous signing secret lives there (issue 14).
        managed.register_column(managed.SealedColumn(managed.WEBHOOK_ENDPOINTS, WebhookEndpoint,
                                                     "previous_secret_ciphertext", "previous_secret_key_id"))
        strategy_register()
        from webhooks import signals

        signals.connect()
        periodic.register("webhooks-publication-sweep", "webhooks.publication_sweep",
                          lambda cfg: cfg.integrations.webhooks.publish_sweep_interval_seconds)
        periodic.register("webhooks-retention", "webhooks.deliveries_prune", lambda cfg: 3600)
