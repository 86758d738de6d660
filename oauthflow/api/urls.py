from __future__ import annotations

from django.urls import path

from oauthflow import views as page_views
from oauthflow.api import views

urlpatterns = [
    path("oauth/initiate", views.OAuthInitiateApi.as_view(), name="oauth-initiate"),
    path("oauth/callback", views.OAuthCallbackApi.as_view(), name="oauth-callback"),
    path("oauth/status/<str:connection_name>", views.OAuthStatusApi.as_view(), name="oauth-status"),
    # The admin's "Connect" entry point (a page with a POST button, not part of the REST API).
    path("oauth/connect/<str:connection_name>", page_views.connect_page, name="oauthflow-connect"),
]
