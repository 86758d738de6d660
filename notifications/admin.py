"""Admin: thin shells over `notifications.services`; secrets are never rendered."""
from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.decorators import method_decorator
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters

from notifications import services
from notifications.models import Alert, AlertAttempt, AlertRule, NotificationSink, Problem
from notifications.sinks import KINDS
from synthorg import permissions
from synthorg.admin import ReadOnlyAdmin


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


# The field a Slack incoming-webhook sink's URL is typed into; a secret, never rendered back.
WEBHOOK_URL_FIELD = "webhook_url"


class SinkAddForm(forms.ModelForm):
    """The add form: what `services.sink_create` takes. A generated secret (a webhook sink's
    whsec_ key) is made by the service and shown once on the page after saving."""

    webhook_url = forms.CharField(
        required=False, strip=True, widget=forms.PasswordInput(render_value=False),
        help_text="Only for a Slack incoming-webhook sink: the URL Slack gave you (a secret, never shown again).")

    class Meta:
        model = NotificationSink
        fields = ("name", "kind", "connection", "settings", "enabled")

    def secrets(self) -> dict[str, str]:
        value = (self.cleaned_data.get(WEBHOOK_URL_FIELD) or "") if hasattr(self, "cleaned_data") else ""
        return {WEBHOOK_URL_FIELD: value} if value else {}

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if cleaned.get("kind") in KINDS:
            # The service's own rules (connection type, settings, secrets), field by field.
            problems = services.sink_check(cleaned["kind"], cleaned.get("connection"),
                                           cleaned.get("settings") or {}, self.secrets())
            for field, messages_ in problems.items():
                self.add_error(field if field in self.fields else None, messages_)
        return cleaned


@admin.register(NotificationSink)
class NotificationSinkAdmin(admin.ModelAdmin):
    """Sinks are listed, added through `sink_create` (a generated secret is shown once on the page
    that follows, never stored in a message), edited through `sink_update` and tested."""

    form = SinkForm
    add_form = SinkAddForm
    list_display = ("name", "kind", "connection", "enabled", "updated_at")
    list_filter = ("kind", "enabled")
    search_fields = ("name",)
    readonly_fields = ("kind",)
    actions = ["send_test_alert"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return permissions.allowed(request.user, "notification_sink.add")

    # Deletes go through the service: it destroys the sink's secret in a secret manager too.
    def delete_model(self, request: HttpRequest, obj: NotificationSink) -> None:
        services.sink_delete(sink_id=obj.pk, actor=request.user, request=request)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[NotificationSink]) -> None:
        for pk in queryset.values_list("pk", flat=True):
            services.sink_delete(sink_id=pk, actor=request.user, request=request)

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        if obj is None:
            kwargs["form"] = self.add_form
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return (*SinkAddForm.Meta.fields, WEBHOOK_URL_FIELD)
        return super().get_fields(request, obj)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return () if obj is None else self.readonly_fields

    @method_decorator(sensitive_post_parameters(WEBHOOK_URL_FIELD))
    @method_decorator(never_cache)
    def add_view(self, request: HttpRequest, form_url: str = "", extra_context: Any = None) -> HttpResponse:
        return super().add_view(request, form_url, extra_context)

    def response_add(self, request: HttpRequest, obj: NotificationSink, post_url_continue: Any = None) -> HttpResponse:
        shown_once = getattr(request, "_sink_shown_once", None)
        if not shown_once:
            return super().response_add(request, obj, post_url_continue)
        # The generated secret goes into this one response only: not a Django message (those can
        # be stored in a cookie or the session), not the log, not the audit event.
        context = {**self.admin_site.each_context(request), "opts": self.opts, "title": f"Sink {obj.name} added",
                   "subtitle": None, "sink": obj, "shown_once": sorted(shown_once.items()),
                   "change_url": reverse("admin:notifications_notificationsink_change", args=[obj.pk])}
        response = TemplateResponse(request, "admin/notifications/sink_created.html", context)
        response["Cache-Control"] = "no-store, private"
        response["Pragma"] = "no-cache"
        response["Referrer-Policy"] = "no-referrer"
        return response

    def save_model(self, request: HttpRequest, obj: NotificationSink, form: Any, change: bool) -> None:
        if not change:
            data = form.cleaned_data
            connection = data["connection"].name if data["connection"] else None
            created = services.sink_create(
                name=data["name"], kind=data["kind"], connection=connection,
                settings=data.get("settings") or {}, secrets=form.secrets(), enabled=bool(data.get("enabled")),
                actor=request.user, request=request)
            # The admin's own bookkeeping (LogEntry, redirects) reads the saved row.
            obj.pk, obj.created_at, obj.updated_at = created.sink.pk, created.sink.created_at, created.sink.updated_at
            request._sink_shown_once = created.shown_once  # type: ignore[attr-defined]  # read by response_add
            return
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


class AlertRuleForm(forms.ModelForm):
    """The service's rules (events, types, params, reminders) as form errors."""

    class Meta:
        model = AlertRule
        fields = ("name", "events", "connection_types", "connections", "sinks", "reminder_interval_seconds",
                  "params", "enabled")

    def service_data(self) -> dict[str, Any]:
        data = {key: self.cleaned_data.get(key) for key in self.Meta.fields}
        data["connections"] = [c.name for c in data["connections"] or []]
        data["sinks"] = [s.pk for s in data["sinks"] or []]
        data["connection_types"] = data["connection_types"] or []
        data["params"] = data["params"] or {}
        return data

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if not self.errors:
            errors, _connections, _sinks = services.rule_check(self.service_data())
            for key, problems in errors.items():
                self.add_error(key if key in self.fields else None, problems)
        return cleaned


@admin.register(AlertRule)
class AlertRuleAdmin(admin.ModelAdmin):
    """Rules are written through the services (their checks and audit events), as the API does."""

    form = AlertRuleForm
    list_display = ("name", "events", "enabled", "reminder_interval_seconds")
    list_filter = ("enabled",)
    filter_horizontal = ("sinks", "connections")

    def save_model(self, request: HttpRequest, obj: AlertRule, form: Any, change: bool) -> None:
        data = form.service_data()
        if change:
            services.rule_update(rule_id=obj.pk, data=data, actor=request.user, request=request)
        else:
            obj.pk = services.rule_create(data=data, actor=request.user, request=request).pk
        obj.refresh_from_db()

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        pass  # the service set the sinks and connections in the save's transaction

    def delete_model(self, request: HttpRequest, obj: AlertRule) -> None:
        services.rule_delete(rule_id=obj.pk, actor=request.user, request=request)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[AlertRule]) -> None:
        for rule_id in list(queryset.values_list("pk", flat=True)):
            services.rule_delete(rule_id=rule_id, actor=request.user, request=request)


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

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # A problem's history (and its alerts, by cascade) is the record of what was announced;
        # the service resolves problems, nobody deletes them from the console.
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
class AlertAdmin(ReadOnlyAdmin):
    """The outbox: deleting a row from the console would lose an alert nobody has sent yet."""

    list_display = ("id", "kind", "sink", "status", "attempts", "next_attempt_at", "sent_at")
    list_filter = ("status", "kind", "sink")
    readonly_fields = [f.name for f in Alert._meta.fields]
    inlines = [AlertAttemptInline]
