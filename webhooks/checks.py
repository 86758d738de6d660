"""System checks: signature verification may be off only in development mode."""
from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Error, register


@register()
def verify_signatures_check(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    from synthorg.config import ConfigInvalid, get_config

    try:
        verify = get_config().integrations.webhooks.verify_signatures
    except ConfigInvalid:
        return []  # synthorg's own check reports the broken file
    if verify or settings.SYNTHORG_DEV:
        return []
    return [Error("integrations.webhooks.verify_signatures is false outside development mode",
                  hint="Unsigned webhooks are accepted only by `make run` (SYNTHORG_DEV=1); set it to true.",
                  id="webhooks.E001")]
