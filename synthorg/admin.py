from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import Count, QuerySet
from django.http import HttpRequest

from synthorg.models import AuditEvent, ServiceHeartbeat


class RecordAdmin(admin.ModelAdmin):
    """Records written by the service, never by hand: no add and no change (delete stays with
    the model permission)."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ReadOnlyAdmin(RecordAdmin):
    """Records nobody may remove from the console either."""

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class TargetFilter(admin.SimpleListFilter):
    """By target: the most frequent ones are offered, and ``?target=<name>`` filters by any."""

    title = "target"
    parameter_name = "target"
    offered = 30

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        top = (AuditEvent.objects.exclude(target="").values("target").annotate(n=Count("id"))
               .order_by("-n", "target")[:self.offered])
        return [(row["target"], row["target"]) for row in top]

    def queryset(self, request: HttpRequest, queryset: QuerySet[AuditEvent]) -> QuerySet[AuditEvent]:
        value = self.value()
        return queryset.filter(target=value) if value else queryset


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "actor_name", "action", "target_type", "target", "outcome", "reason", "ip"]
    list_filter = [("actor_name", admin.AllValuesFieldListFilter), "action", "outcome", "target_type",
                   TargetFilter]
    search_fields = ["actor_name", "action", "target", "request_id"]
    date_hierarchy = "created_at"


@admin.register(ServiceHeartbeat)
class ServiceHeartbeatAdmin(ReadOnlyAdmin):
    list_display = ["name", "last_seen_at", "count"]
