"""The URLconf of `webhooks.wsgi`'s lean handler: the receiver's route alone, at its usual path."""
from __future__ import annotations

from django.urls import URLPattern, re_path

from webhooks import views
from webhooks.api.urls import RECEIVER_ROUTE

# One flat pattern (no include): resolving it is a single regex match.
urlpatterns: list[URLPattern] = [
    re_path(r"^api/v1/" + RECEIVER_ROUTE.removeprefix("^"), views.webhook_receive, name="webhook-receive"),
]
