from __future__ import annotations

from django.urls import path

from integrations.api import views

urlpatterns = [
    path("connections", views.ConnectionListCreateApi.as_view(), name="connection-list"),
    path("connections/types", views.ConnectionTypeListApi.as_view(), name="connection-types"),
    path("connections/<str:name>", views.ConnectionDetailApi.as_view(), name="connection-detail"),
    path("connections/<str:name>/health", views.ConnectionHealthApi.as_view(), name="connection-health"),
    path("integrations/health", views.HealthListApi.as_view(), name="integrations-health"),
    path("connections/<str:name>/secrets/<str:field>", views.SecretRevealApi.as_view(), name="connection-secret"),
]
