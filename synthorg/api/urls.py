from __future__ import annotations

from django.urls import path
from rest_framework.authtoken.views import ObtainAuthToken

from synthorg.api.views import AuditEventListApi

urlpatterns = [
    path("auth/token", ObtainAuthToken.as_view(), name="auth-token"),
    path("audit-events", AuditEventListApi.as_view(), name="audit-event-list"),
]
