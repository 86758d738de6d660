"""Admin: thin shells over `notifications.services`; secrets are never rendered."""
from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from notifications import services
from notifications.models import Alert, AlertAttempt, AlertRule, NotificationSink, Problem
from notifications.sinks import KINDS
from synthorg import permissions


class SinkForm(forms.ModelForm):
    class Meta:
        model = NotificationSink
        fields = ("name", "connection", "settings", "enabled")

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if self.instance.pk is not None:
            problems = services.sink_check(self.instance.kind, cleaned.get("connection"),
                                           cleaned.get("settings") or {}, {})
            for field, messages_ in problems.items():
                self.add_error(field if field in self.fields else None, messages_)
            connection = cleaned.get("connection")
            if (KINDS[self.instance.kind].generated_secret is not None
                    and (connection.pk if connection else None) != self.instance.connection_id):
                self.add_error("connection", "A webhook sink's signing secret is bound to its receiver; "
                                             "create a new sink for another connection.")
        return cleaned


@admin.register(NotificationSink)
class NotificationSinkAdmin(admin.ModelAdmin):
    """Sinks are created through the API or `manage.py notifications` (a webhook sink's secret is
    shown once there); here they are listed, edited through `sink_update` and tested."""

    form = SinkForm
    list_display = ("name", "kind", "connection", "enabled", "updated_at")
    list_filter = ("kind", "enabled")
    search_fields = ("name",)
    readonly_fields = ("kind",)
    actions = ["send_test_alert"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: NotificationSink, form: Any, change: bool) -> None:
        data = {name: form.cleaned_data[name] for name in form.changed_data}
        if "connection" in data:
            data["connection"] = data["connection"].name if data["connection"] else None
        services.sink_update(sink_id=obj.pk, data=data, actor=request.user, request=request)

    @admin.action(description="Send test alert", permissions=["test"])
    def send_test_alert(self, request: HttpRequest, queryset: QuerySet[NotificationSink]) -> None:
        for sink in queryset:
            outcome = services.sink_test(sink_id=sink.pk, actor=request.user, request=request)
            if outcome.result == "sent":
                self.message_user(request, f"Test alert sent through {sink.name}.", messages.SUCCESS)
            else:
                self.message_user(request, f"Test alert through {sink.name} failed: {outcome.error}", messages.ERROR)

    def has_test_permission(self, request: HttpRequest) -> bool:
        return permissions.allowed(request.user, "notification_sink.test")


@admin.register(AlertRule)
class AlertRuleAdmin(admin.ModelAdmin):
    list_display = ("name", "events", "enabled", "reminder_interval_seconds")
    list_filter = ("enabled",)
    filter_horizontal = ("sinks", "connections")


class AcknowledgedFilter(admin.SimpleListFilter):
    title = "acknowledged"
    parameter_name = "acknowledged"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "Yes"), ("no", "No")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Problem]) -> QuerySet[Problem]:
        if self.value() in ("yes", "no"):
            return queryset.filter(acknowledged_at__isnull=self.value() == "no")
        return queryset


@admin.register(Problem)
class ProblemAdmin(admin.ModelAdmin):
    list_display = ("title", "state", "event", "connection_name", "first_seen_at", "resolved_at", "acknowledged_by")
    list_filter = ("state", AcknowledgedFilter, "event", "rule")
    search_fields = ("title", "subject", "connection_name")
    actions = ["acknowledge"]
    readonly_fields = [f.name for f in Problem._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Acknowledge (no reminders until resolved)", permissions=["change"])
    def acknowledge(self, request: HttpRequest, queryset: QuerySet[Problem]) -> None:
        for problem in queryset:
            services.problem_acknowledge(problem_id=problem.pk, actor=request.user, request=request)
        self.message_user(request, f"{queryset.count()} problem(s) acknowledged.", messages.SUCCESS)


class AlertAttemptInline(admin.TabularInline):
    model = AlertAttempt
    extra = 0
    can_delete = False
    readonly_fields = ("number", "started_at", "finished_at", "outcome", "status_code", "retry_after", "error")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Alert)
class AlertAdmin(admin.ModelAdmin):
    list_display = ("id", "kind", "sink", "status", "attempts", "next_attempt_at", "sent_at")
    list_filter = ("status", "kind", "sink")
    readonly_fields = [f.name for f in Alert._meta.fields]
    inlines = [AlertAttemptInline]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
