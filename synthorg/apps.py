from __future__ import annotations

from django.apps import AppConfig


class SynthorgConfig(AppConfig):
    name = "synthorg"
    verbose_name = "SynthOrg service"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from synthorg import checks, config, periodic  # noqa: F401  (registers checks)

        config.connect_signals()
        from django.contrib.auth.signals import user_login_failed

        from synthorg.login_guard import login_failed_audit

        user_login_failed.connect(login_failed_audit, dispatch_uid="synthorg.login_failed_audit")
        periodic.register(
            "heartbeat",
            "synthorg.heartbeat_record",
            lambda cfg: cfg.integrations.scheduler.heartbeat_interval_seconds,
        )
