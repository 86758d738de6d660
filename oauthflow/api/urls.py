from __future__ import annotations

from django.urls import path

from oauthflow.api import views

urlpatterns = [
    path("oauth/initiate", views.OAuthInitiateApi.as_view(), name="oauth-initiate"),
    path("oauth/callback", views.OAuthCallbackApi.as_view(), name="oauth-callback"),
    path("oauth/status/<str:connection_name>", views.OAuthStatusApi.as_view(), name="oauth-status"),
]
