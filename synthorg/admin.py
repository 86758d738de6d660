from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from synthorg.models import AuditEvent, ServiceHeartbeat


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "actor_name", "action", "target_type", "target", "outcome", "reason", "ip"]
    list_filter = ["action", "outcome", "target_type"]
    search_fields = ["actor_name", "action", "target", "request_id"]
    date_hierarchy = "created_at"


@admin.register(ServiceHeartbeat)
class ServiceHeartbeatAdmin(ReadOnlyAdmin):
    list_display = ["name", "last_seen_at", "count"]
