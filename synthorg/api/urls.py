from __future__ import annotations

from django.urls import path

from synthorg.api.views import AuditEventListApi

urlpatterns = [
    path("audit-events", AuditEventListApi.as_view(), name="audit-event-list"),
]
