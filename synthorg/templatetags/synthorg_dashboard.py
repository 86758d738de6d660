from __future__ import annotations

from typing import Any

from django import template

from synthorg.dashboard import cards

register = template.Library()


@register.inclusion_tag("admin/synthorg/dashboard.html", takes_context=True)
def dashboard_cards(context: Any) -> dict[str, Any]:
    request = context.get("request")
    return {"cards": cards(request) if request is not None else []}
