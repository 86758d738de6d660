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
        from integrations.secrets import managed

        # Under a secret manager the sink's secret lives there (issue 14); a sink outlives its
        # connection (SET_NULL), so a connection's delete leaves the sink's secret alone.
        managed.register_column(managed.SealedColumn(managed.NOTIFICATION_SINKS, NotificationSink,
                                                     "secret_ciphertext", "secret_key_id", connection_field=None))
        periodic.register("notifications-evaluate", "notifications.problems_evaluate",
                          lambda cfg: EVALUATE_INTERVAL_SECONDS)
        from django.conf import settings

        periodic.register("notifications-sweep", "notifications.alerts_sweep",
                          lambda cfg: settings.SYNTHORG_ALERTS_SWEEP_SECONDS)
