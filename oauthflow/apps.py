from __future__ import annotations

from django.apps import AppConfig


class OAuthFlowConfig(AppConfig):
    name = "oauthflow"
    verbose_name = "OAuth 2.1"
    default_auto_field = "django.db.models.BigAutoField"
