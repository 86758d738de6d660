from __future__ import annotations

from django.apps import AppConfig

EVALUATE_INTERVAL_SECONDS = 60


class NotificationsConfig(AppConfig):
    name = "notifications"
    verbose_name = "Alerts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from integrations.secrets import rotation
        from notifications.dashboard import problems_card
        from notifications.models import NotificationSink
        from notifications.problems import event_record
        from synthorg import dashboard, events, periodic

        # Transitions written by other apps arrive here, inside their transactions.
        events.subscribe("notifications", event_record)
        dashboard.register("problems", problems_card)
        rotation.register("notifications", lambda *, actor=None: rotation.rotate_fields(
            (NotificationSink, "secret_ciphertext", "secret_key_id")))
        periodic.register("notifications-evaluate", "notifications.problems_evaluate",
                          lambda cfg: EVALUATE_INTERVAL_SECONDS)
        from django.conf import settings

        periodic.register("notifications-sweep", "notifications.alerts_sweep",
                          lambda cfg: settings.SYNTHORG_ALERTS_SWEEP_SECONDS)
