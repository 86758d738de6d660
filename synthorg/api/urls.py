from __future__ import annotations

from django.urls import path

from synthorg.api.views import AuditEventListApi, AuthTokenApi

urlpatterns = [
    path("auth/token", AuthTokenApi.as_view(), name="auth-token"),
    path("audit-events", AuditEventListApi.as_view(), name="audit-event-list"),
]
