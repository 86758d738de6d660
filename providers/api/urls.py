from __future__ import annotations

from django.urls import path

from providers.api import views

urlpatterns = [
    path("providers", views.ProviderListCreateApi.as_view(), name="provider-list"),
    path("providers/<str:name>", views.ProviderDetailApi.as_view(), name="provider-detail"),
    path("providers/<str:name>/resolve-check", views.ProviderResolveCheckApi.as_view(),
         name="provider-resolve-check"),
]
