"""Admin for deliveries, trigger rules and workflow runs. Payloads and bodies only with
the `webhooks.view_delivery_payload` permission; writes to rules go through model validation."""
from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from webhooks.models import Delivery, TriggerRule, WorkflowRun

PAYLOAD_PERMISSION = "webhooks.view_delivery_payload"


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    list_display = ("id", "connection_name", "event_type", "outcome", "matched_secret", "publish_state",
                    "duplicates", "received_at", "published_at")
    list_filter = ("outcome", "publish_state", "connection_type", "matched_secret")
    search_fields = ("connection_name", "event_type", "provider_delivery_id", "event_id")
    date_hierarchy = "received_at"
    ordering = ("-received_at",)

    def get_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        fields = ["event_id", "connection_name", "connection_type", "event_type", "event_name", "path_event_type",
                  "provider_delivery_id", "outcome", "matched_secret", "signed_timestamp", "remote_ip",
                  "duplicates", "received_at", "publish_state", "publish_attempts", "publish_claimed_at",
                  "published_at", "content_type", "headers"]
        if request.user.has_perm(PAYLOAD_PERMISSION):
            fields.append("payload")
        return fields

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return self.get_fields(request, obj)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(TriggerRule)
class TriggerRuleAdmin(admin.ModelAdmin):
    list_display = ("name", "enabled", "connection", "event_type", "workflow", "updated_at")
    list_filter = ("enabled", "workflow")
    search_fields = ("name", "event_type")
    raw_id_fields = ("connection",)


@admin.register(WorkflowRun)
class WorkflowRunAdmin(admin.ModelAdmin):
    list_display = ("id", "rule_name", "workflow", "connection_name", "event_type", "status", "attempts",
                    "created_at", "finished_at")
    list_filter = ("status", "workflow")
    search_fields = ("rule_name", "event_id", "connection_name")
    readonly_fields = ("rule", "rule_name", "workflow", "parameters", "event_id", "delivery", "connection_name",
                       "event_type", "status", "attempts", "error", "result", "created_at", "next_attempt_at",
                       "started_at", "finished_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
