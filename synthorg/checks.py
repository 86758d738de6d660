"""System checks for the configuration file and the run mode (`manage.py check`, and at startup)."""
from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import checks

from synthorg.config import ConfigInvalid, load


@checks.register("synthorg")
def check_integrations_config(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    try:
        load(settings.SYNTHORG_CONFIG_FILE, overrides=settings.SYNTHORG_CONFIG_OVERRIDES or None)
    except ConfigInvalid as exc:
        source = settings.SYNTHORG_CONFIG_FILE or "environment"
        return [
            checks.Error(
                f"Invalid configuration: {problem.path} {problem.rule}",
                hint=f"Fix {problem.path} in {source} (see README, Configuration).",
                id="synthorg.E001",
            )
            for problem in exc.problems
        ]
    return []


@checks.register("synthorg", deploy=True)
def check_run_mode(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    messages: list[checks.CheckMessage] = []
    if settings.SYNTHORG_DEV:
        messages.append(checks.Warning(
            "Development mode (SYNTHORG_DEV=1): DEBUG, a generated master key and relaxed security.",
            hint="Never expose this instance; production runs without SYNTHORG_DEV.",
            id="synthorg.W001",
        ))
    if settings.ALLOW_INSECURE_HTTP and not settings.SYNTHORG_DEV:
        messages.append(checks.Warning(
            "SYNTHORG_ALLOW_INSECURE_HTTP=1: cookies are sent over plain HTTP and HTTPS is not enforced.",
            hint="Only for a local docker-compose trial; put TLS in front and unset it in production.",
            id="synthorg.W002",
        ))
    return messages
