from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from synthorg.config import get_config


def integrations_state(request: HttpRequest) -> dict[str, Any]:
    """Lets the admin show a banner when the integrations layer is switched off."""
    return {"integrations_enabled": get_config().integrations.enabled}
