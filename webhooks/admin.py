"""Admin for deliveries (the activity log), trigger rules and workflow runs.

* Deliveries are read-only; the payload is shown only to holders of
  ``webhooks.view_delivery_payload`` (others see that it is withheld).
* Trigger rules are edited here, but every write goes through ``webhooks.services``
  (`trigger_rule_create/update/delete`), so it is validated and audited like the API's.
* Workflow runs show their error; failed ones can be retried (a "Retry" button on the run,
  and an action on the list), which needs ``webhooks.change_workflowrun`` and calls
  `services.workflow_run_retry`.
"""
from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.utils.html import format_html
from django.views.decorators.http import require_POST

from synthorg import permissions
from synthorg.admin import ReadOnlyAdmin, RecordAdmin
from synthorg.errors import SynthorgError
from webhooks import services
from webhooks.models import Delivery, RejectionCount, TriggerRule, WorkflowRun

PAYLOAD_ACTION = "delivery.view_payload"
RETRY_ACTION = "workflow_run.retry"
# ?received=<key> on the activity lists: the dashboard links to "last hour".
RECENT_WINDOWS = {"1h": ("last hour", timedelta(hours=1)), "24h": ("last 24 hours", timedelta(days=1)),
                  "7d": ("last 7 days", timedelta(days=7))}


class RecentFilter(admin.SimpleListFilter):
    """Received within a window ending now (the date hierarchy cannot say "the last hour")."""

    title = "received"
    parameter_name = "received"
    field_name = "received_at"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(key, label) for key, (label, _) in RECENT_WINDOWS.items()]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        window = RECENT_WINDOWS.get(self.value() or "")
        if window is None:
            return queryset
        return queryset.filter(**{f"{self.field_name}__gte": timezone.now() - window[1]})


class RecentMinuteFilter(RecentFilter):
    field_name = "minute"


@admin.register(Delivery)
class DeliveryAdmin(RecordAdmin):
    list_display = ("id", "connection_name", "event_type", "outcome", "matched_secret", "publish_state",
                    "duplicates", "received_at", "published_at")
    list_filter = (RecentFilter, "outcome", "publish_state", "connection_type", "matched_secret")
    search_fields = ("connection_name", "event_type", "provider_delivery_id", "event_id")
    date_hierarchy = "received_at"
    ordering = ("-received_at",)

    def get_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        fields = ["event_id", "connection_name", "connection_type", "event_type", "event_name", "path_event_type",
                  "provider_delivery_id", "outcome", "matched_secret", "signed_timestamp", "remote_ip",
                  "duplicates", "received_at", "publish_state", "publish_attempts", "publish_claimed_at",
                  "published_at", "content_type", "headers", "workflow_runs"]
        fields.append("payload" if permissions.allowed(request.user, PAYLOAD_ACTION) else "payload_withheld")
        return fields

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return self.get_fields(request, obj)

    def lookup_allowed(self, lookup: str, value: str, request: HttpRequest | None = None) -> bool:
        # The changelist accepts any ?<field>__<lookup>= on a local field: filtering on the payload
        # (or the raw body) would tell a user without the payload permission what it contains.
        if lookup.split("__", 1)[0] in ("payload", "body") and not (
                request is not None and permissions.allowed(request.user, PAYLOAD_ACTION)):
            return False
        return super().lookup_allowed(lookup, value, request)

    @admin.display(description="payload")
    def payload_withheld(self, obj: Delivery) -> str:
        return f"(withheld: viewing payloads needs the {permissions.need(PAYLOAD_ACTION).describe()} permission)"

    @admin.display(description="workflow runs")
    def workflow_runs(self, obj: Delivery) -> str:
        url = reverse("admin:webhooks_workflowrun_changelist")
        count = obj.runs.count()
        return format_html('<a href="{}?delivery__exact={}">{} run(s)</a>', url, obj.pk, count)


@admin.register(RejectionCount)
class RejectionCountAdmin(ReadOnlyAdmin):
    """Rejected requests, counted per connection, reason and minute (bodies are never kept)."""

    list_display = ("minute", "connection_name", "reason", "count")
    list_filter = (RecentMinuteFilter, "reason")
    search_fields = ("connection_name", "reason")
    ordering = ("-minute",)


@admin.register(TriggerRule)
class TriggerRuleAdmin(admin.ModelAdmin):
    list_display = ("name", "enabled", "connection", "event_type", "workflow", "updated_at")
    list_filter = ("enabled", "workflow")
    search_fields = ("name", "event_type")
    raw_id_fields = ("connection",)
    fields = ("name", "enabled", "connection", "event_type", "conditions", "workflow", "parameters")

    def save_model(self, request: HttpRequest, obj: TriggerRule, form: Any, change: bool) -> None:
        # The form validated the model (clean()); the service validates again, saves and audits.
        data = {key: form.cleaned_data[key] for key in services.RULE_FIELDS if key in form.cleaned_data}
        data["connection"] = obj.connection.name if obj.connection_id else None
        if change:
            saved = services.trigger_rule_update(rule_id=obj.pk, data=data, actor=request.user, request=request)
        else:
            saved = services.trigger_rule_create(data=data, actor=request.user, request=request)
        # The admin's own log entry and redirect need the saved row.
        obj.pk = saved.pk
        obj.created_at, obj.updated_at = saved.created_at, saved.updated_at

    def delete_model(self, request: HttpRequest, obj: TriggerRule) -> None:
        services.trigger_rule_delete(rule_id=obj.pk, actor=request.user, request=request)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[TriggerRule]) -> None:
        for rule_id in list(queryset.values_list("pk", flat=True)):
            services.trigger_rule_delete(rule_id=rule_id, actor=request.user, request=request)


RUN_STATUS_WORDS = {WorkflowRun.Status.PENDING: "queued", WorkflowRun.Status.RUNNING: "running",
                    WorkflowRun.Status.SUCCEEDED: "succeeded", WorkflowRun.Status.FAILED: "failed"}


@admin.register(WorkflowRun)
class WorkflowRunAdmin(RecordAdmin):
    # Runs are records; the only change is a retry, behind its own permission.
    list_display = ("id", "rule_name", "workflow", "connection_name", "event_type", "status_badge", "attempts",
                    "error_short", "created_at", "finished_at")
    list_filter = ("status", "workflow", "rule_name")
    search_fields = ("rule_name", "event_id", "connection_name", "error")
    actions = ("retry_selected",)
    readonly_fields = ("rule", "rule_name", "workflow", "parameters", "event_id", "delivery", "connection_name",
                       "event_type", "status_badge", "attempts", "error", "result", "created_at", "next_attempt_at",
                       "started_at", "finished_at", "retry_button")

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj: WorkflowRun) -> str:
        # A pending run is waiting for a worker: "queued", the word the Retry message uses.
        word = RUN_STATUS_WORDS.get(obj.status, obj.status)
        return format_html('<span class="console-badge run-status {}" data-status="{}">{}</span>',
                           word, obj.status, word)

    @admin.display(description="error", ordering="error")
    def error_short(self, obj: WorkflowRun) -> str:
        return obj.error if len(obj.error) <= 80 else obj.error[:79] + "…"

    @admin.display(description="retry")
    def retry_button(self, obj: WorkflowRun) -> str:
        if obj.status != WorkflowRun.Status.FAILED:
            return "(only failed runs can be retried)"
        url = reverse("admin:webhooks_workflowrun_retry", args=[obj.pk])
        # The change page is one form (with its CSRF token); this button posts it to the retry view.
        return format_html('<button type="submit" class="button" id="retry-run" formaction="{}" formmethod="post" '
                           'formnovalidate>Retry this run</button>', url)

    def has_retry_permission(self, request: HttpRequest) -> bool:
        return permissions.allowed(request.user, RETRY_ACTION)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        # The Retry button only for those who may retry (they would get a 403 otherwise).
        fields = list(super().get_readonly_fields(request, obj))
        return fields if self.has_retry_permission(request) else [f for f in fields if f != "retry_button"]

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return self.get_readonly_fields(request, obj)

    @admin.action(description="Retry the selected failed runs", permissions=["retry"])
    def retry_selected(self, request: HttpRequest, queryset: QuerySet[WorkflowRun]) -> None:
        for run_id in list(queryset.values_list("pk", flat=True)):
            try:
                services.workflow_run_retry(run_id=run_id, actor=request.user, request=request)
            except SynthorgError as exc:
                self.message_user(request, str(exc.detail), messages.WARNING)
            else:
                self.message_user(request, f"Run {run_id} queued again.", messages.SUCCESS)

    def get_urls(self) -> list[URLPattern]:
        def wrap(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
            return self.admin_site.admin_view(view)

        return [path("<int:run_id>/retry/", wrap(self.retry_view), name="webhooks_workflowrun_retry"),
                *super().get_urls()]

    @method_decorator(require_POST)
    def retry_view(self, request: HttpRequest, run_id: int) -> HttpResponse:
        if not self.has_retry_permission(request):
            raise PermissionDenied
        try:
            services.workflow_run_retry(run_id=run_id, actor=request.user, request=request)
        except SynthorgError as exc:
            if exc.status_code == 404:
                from django.http import Http404

                raise Http404(str(exc.detail)) from None
            self.message_user(request, str(exc.detail), messages.ERROR)
        else:
            self.message_user(request, f"Run {run_id} queued again.", messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:webhooks_workflowrun_change", args=[run_id]))
