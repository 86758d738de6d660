from __future__ import annotations

from django.urls import URLPattern, path, re_path

from webhooks import views
from webhooks.api import views as api

# The receiver's route (also served by `webhooks.wsgi`'s lean handler, with the same view).
RECEIVER_ROUTE = (r"^webhooks/(?!(?:runs|triggers)/)(?P<connection_name>[^/]{1,128})"
                  r"/(?P<event_type>[A-Za-z0-9._:-]{1,100})$")

# The specific paths come first: `webhooks/<name>/<event_type>` would match them too.
urlpatterns: list[URLPattern] = [
    path("webhooks/triggers", api.TriggerRuleListCreateApi.as_view(), name="webhook-trigger-list"),
    path("webhooks/triggers/<int:pk>", api.TriggerRuleDetailApi.as_view(), name="webhook-trigger-detail"),
    path("webhooks/runs", api.WorkflowRunListApi.as_view(), name="webhook-run-list"),
    path("webhooks/runs/<int:pk>", api.WorkflowRunDetailApi.as_view(), name="webhook-run-detail"),
    path("webhooks/<str:connection_name>/activity", api.WebhookActivityApi.as_view(), name="webhook-activity"),
    path("connections/<str:name>/signing-secret/rotate", api.SigningSecretRotateApi.as_view(),
         name="connection-signing-secret-rotate"),
    re_path(RECEIVER_ROUTE, views.webhook_receive, name="webhook-receive"),
]
