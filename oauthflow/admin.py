"""Token status in the admin: never the token itself."""
from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from oauthflow.models import OAuthToken


@admin.register(OAuthToken)
class OAuthTokenAdmin(admin.ModelAdmin):
    list_display = ("connection", "grant_type", "status", "expires_at", "last_refreshed_at", "failure_count",
                    "has_refresh_token", "connect_link")
    list_filter = ("status", "grant_type")
    search_fields = ("connection__name",)
    list_select_related = ("connection",)
    # ciphertext, key_id and the lease internals are left out on purpose.
    fields = ("connection", "grant_type", "status", "token_type", "scopes", "expires_at", "obtained_at",
              "last_refreshed_at", "has_refresh_token", "failure_count", "last_error", "next_attempt_at",
              "connect_link")
    readonly_fields = fields

    @admin.display(description="Connect")
    def connect_link(self, obj: OAuthToken) -> str:
        url = reverse("oauthflow-connect", args=[obj.connection.name])
        return format_html('<a href="{}">Connect again</a>', url)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
