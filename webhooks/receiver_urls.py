"""The URLconf of `webhooks.wsgi`'s lean handler: the receiver's route alone, at its usual path."""
from __future__ import annotations

from django.urls import URLPattern, URLResolver, include, path, re_path

from webhooks import views
from webhooks.api.urls import RECEIVER_ROUTE

urlpatterns: list[URLPattern | URLResolver] = [
    path("api/v1/", include([re_path(RECEIVER_ROUTE, views.webhook_receive, name="webhook-receive")])),
]
