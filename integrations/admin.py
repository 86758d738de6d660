"""The connections admin: thin over `integrations.services`, and it never renders a secret.

Adding is two steps: name and type first (`choose_type.html`), then the form that type's
fields generate (`integrations.forms`). Saves, deletes and bulk deletes all go through
the same services as the API, so they are validated, audited and cascade the same way.

Extending: other capabilities add actions to `ConnectionAdmin.actions` and read-only
fields to `ConnectionAdmin.state_fields` (shown in the "State" fieldset of the change form).
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.actions import delete_selected
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import ProtectedError, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.decorators import method_decorator
from django.utils.html import format_html
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables

from integrations import dependants, services
from integrations.admin_controls import ConnectionControlsMixin, current_request, current_user_may, needs_note
from integrations.forms import (
    FIELD_PREFIX,
    ConnectionForm,
    ConnectionTypeChoiceForm,
    connection_form_class,
    type_field_names,
)
from integrations.models import Connection
from integrations.types import REGISTRY, get_type
from synthorg import permissions
from synthorg.errors import SynthorgError
from synthorg.public_url import webhook_url

FORCE_PARAMETER = "force"
# "Check now" probes at most this many connections per click (the sweep handles the rest).
MAX_CHECK_NOW = 50


def _force_requested(request: HttpRequest) -> bool:
    return request.GET.get(FORCE_PARAMETER, "").lower() in {"1", "true", "yes"}


class ConnectionTypeFilter(admin.SimpleListFilter):
    title = "type"
    parameter_name = "connection_type"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(t.name, t.label) for t in REGISTRY.values()]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Connection]) -> QuerySet[Connection]:
        value = self.value()
        return queryset.filter(connection_type=value) if value else queryset


def health_badge_html(status: str) -> str:
    """A coloured badge that also says the status in words (colour is never the only signal)."""
    label = Connection.HealthStatus(status).label if status in Connection.HealthStatus.values else status
    # Colours live in synthorg/static/synthorg/console.css: the CSP allows no inline style.
    return format_html('<span class="health-badge health-{}">{}</span>', status, label)


@admin.register(Connection)
class ConnectionAdmin(ConnectionControlsMixin, admin.ModelAdmin):
    form = ConnectionForm
    list_display = ["name", "connection_type", "health_badge", "health_checked_at", "health_last_error_short",
                    "updated_at"]
    list_filter = [ConnectionTypeFilter, "health_status"]
    search_fields = ["name", "connection_type"]
    ordering = ["name"]
    list_per_page = 50
    actions: Sequence[Any] = ["delete_selected", "check_now"]
    # Read-only fields of the "State" fieldset; other capabilities append theirs here.
    state_fields: Sequence[str] = ["health_badge", "health_checked_at", "health_last_error", "secret_backend",
                                   "secret_fields_display", "reveal_buttons", "check_now_button",
                                   "oauth_connect_link", "created_at", "updated_at"]
    readonly_fields: Sequence[str] = ()
    choose_type_template = "admin/integrations/connection/choose_type.html"
    delete_confirmation_template = "admin/integrations/connection/delete_confirmation.html"

    # --- list ---------------------------------------------------------------------------------

    @admin.display(description="OAuth")
    def oauth_connect_link(self, obj: Connection) -> str:
        if obj.connection_type != "oauth_app":
            return "—"
        if not current_user_may("oauth.status"):
            return needs_note("oauth.status")
        # The console's Connect page: token status, the code flow and the device flow.
        url = reverse("admin:oauthflow_connect", args=[obj.name])
        return format_html('<a class="button" href="{}" id="oauth-console">Connect</a>', url)

    @admin.display(description="health", ordering="health_status")
    def health_badge(self, obj: Connection) -> str:
        return health_badge_html(obj.health_status)

    @admin.display(description="last error", ordering="health_last_error")
    def health_last_error_short(self, obj: Connection) -> str:
        # Stored by the health service, secrets already removed; cut for the list.
        text = obj.health_last_error
        return text if len(text) <= 80 else text[:79] + "…"

    def has_check_permission(self, request: HttpRequest) -> bool:
        return permissions.allowed(request.user, "connection.check")

    @admin.action(description="Check now (probe the selected connections)", permissions=["check"])
    def check_now(self, request: HttpRequest, queryset: QuerySet[Connection]) -> None:
        from integrations import health

        ids = list(queryset.values_list("pk", flat=True)[:MAX_CHECK_NOW])
        # Concurrent and each bounded by integrations.health.timeout_seconds, so the page
        # answers within about one timeout whatever the selection.
        outcomes = health.connections_probe(ids, threads=len(ids) or 1, actor=request.user)
        for outcome in sorted(outcomes, key=lambda o: o.name):
            level = messages.SUCCESS if outcome.result.status in ("healthy", "unknown") else messages.WARNING
            self.message_user(request, f"{outcome.name}: {outcome.status} ({outcome.result.status}: "
                                       f"{outcome.result.detail or 'no detail'})", level)
        if queryset.count() > MAX_CHECK_NOW:
            self.message_user(request, f"Only the first {MAX_CHECK_NOW} selected connections were checked.",
                              messages.WARNING)

    @admin.display(description="secret fields set")
    def secret_fields_display(self, obj: Connection) -> str:
        # Names only: values are never read here.
        return ", ".join(obj.secret_fields) or "(none)"

    # --- what a view-only user sees --------------------------------------------------------------

    def __getattr__(self, name: str) -> Any:
        # A user without change_connection gets every field of the change page read-only, and
        # Django renders a read-only field by looking its name up on the admin, then on the
        # model. The type's fields and the webhook URL exist only in the form, so they showed
        # "None" (issue 12); here they are read from the connection instead.
        if name.startswith(FIELD_PREFIX):
            return _config_display(name.removeprefix(FIELD_PREFIX))
        if name == "webhook_url":
            return _webhook_url_display
        raise AttributeError(name)

    # --- forms --------------------------------------------------------------------------------

    def _chosen_type(self, request: HttpRequest, obj: Connection | None) -> str | None:
        if obj is not None:
            return obj.connection_type
        chosen = request.GET.get("connection_type", "")
        return chosen if chosen in REGISTRY else None

    def get_form(self, request: HttpRequest, obj: Connection | None = None, change: bool = False,
                 **kwargs: Any) -> type[ConnectionForm]:
        type_name = self._chosen_type(request, obj)
        if type_name is None:
            return ConnectionForm
        return connection_form_class(get_type(type_name), connection=obj, request=request)

    def get_readonly_fields(self, request: HttpRequest, obj: Connection | None = None) -> Sequence[str]:
        if obj is None:
            return list(self.readonly_fields)
        return ["name", "connection_type", "webhook_url_copy", *self.readonly_fields, *self.state_fields]

    def get_fieldsets(self, request: HttpRequest, obj: Connection | None = None) -> list[tuple[str | None, dict]]:
        type_name = self._chosen_type(request, obj)
        limits = ("Rate limit and health checks", {"fields": [
            "rate_limit_rpm", "rate_limit_burst", "rate_limit_max_concurrent",
            "health_check_enabled", "health_check_interval_seconds"]})
        if type_name is None:
            return [(None, {"fields": []})]
        ctype = get_type(type_name)
        fields_of_type = (f"{ctype.label} settings", {
            "fields": type_field_names(ctype, add=obj is None),
            "description": "Secret fields are write-only: leave them blank to keep the stored value."})
        if obj is not None and not self.has_change_permission(request, obj):
            # Read-only: the values of the non-secret fields; secrets are listed by name under State.
            fields_of_type = (f"{ctype.label} settings", {
                "fields": [FIELD_PREFIX + spec.name for spec in ctype.fields if not spec.secret]})
        if obj is None:
            return [(None, {"fields": ["name", "connection_type"]}), fields_of_type, limits,
                    ("Metadata", {"fields": ["expires_at", "metadata"], "classes": ["collapse"]})]
        return [(None, {"fields": ["name", "connection_type", "webhook_url", "webhook_url_copy"]}), fields_of_type,
                limits,
                ("Metadata", {"fields": ["expires_at", "metadata"], "classes": ["collapse"]}),
                ("State", {"fields": [*self.readonly_fields, *self.state_fields]})]

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        # Only the name may be prefilled from the URL (step one); nothing else, and never a secret.
        return {"name": request.GET["name"]} if "name" in request.GET else {}

    @method_decorator(sensitive_post_parameters())
    @sensitive_variables()
    def add_view(self, request: HttpRequest, form_url: str = "",
                 extra_context: dict[str, Any] | None = None) -> HttpResponse:
        if request.method == "GET":
            # Other query parameters (preserved changelist filters, popups) do not count as an answer.
            answered = "name" in request.GET or "connection_type" in request.GET
            chooser = ConnectionTypeChoiceForm(request.GET) if answered else None
            if chooser is None or not chooser.is_valid():
                return self.choose_type_view(request, chooser)
        elif self._chosen_type(request, None) is None:
            return self.choose_type_view(request, None)
        ctype = get_type(request.GET["connection_type"])
        extra = {**(extra_context or {}), "subtitle": f"{ctype.label} connection"}
        return super().add_view(request, form_url, extra)

    @method_decorator(sensitive_post_parameters())
    @sensitive_variables()
    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "",
                    extra_context: dict[str, Any] | None = None) -> HttpResponse:
        return super().change_view(request, object_id, form_url, extra_context)

    def choose_type_view(self, request: HttpRequest, chooser: ConnectionTypeChoiceForm | None) -> HttpResponse:
        """Step one of adding: name and type, sent by GET back to the add view."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        chooser = chooser or ConnectionTypeChoiceForm()
        context = {
            **self.admin_site.each_context(request),
            "title": "Add connection: choose its type",
            "subtitle": None,
            "opts": self.opts,
            "chooser": chooser,
            "types": list(REGISTRY.values()),
            "has_view_permission": self.has_view_permission(request),
        }
        return TemplateResponse(request, self.choose_type_template, context)

    # --- saves go through the services (the form called them in clean()) ----------------------

    def save_form(self, request: HttpRequest, form: Any, change: bool) -> Connection:
        return form.instance

    def save_model(self, request: HttpRequest, obj: Connection, form: Any, change: bool) -> None:
        # connection_create / connection_update already wrote the row, the secret and the audit event.
        return None

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        return None

    # --- deletes go through services.connection_delete -----------------------------------------

    def get_deleted_objects(self, objs: Iterable[Connection], request: HttpRequest) -> tuple[Any, Any, Any, Any]:
        objs = list(objs)
        deleted, model_count, perms_needed, protected = super().get_deleted_objects(objs, request)
        force = _force_requested(request)
        protected = [] if force else list(protected)
        deleted = list(deleted)
        for obj in objs:
            for dependant in dependants.registered():
                names = dependant.list_names(obj)
                if not names:
                    continue
                line = f"{dependant.label} using {obj.name}: {', '.join(names)}"
                if force:
                    deleted.append(f"{line} (removed through their own app)")
                else:
                    protected.append(line)
        return deleted, model_count, perms_needed, protected

    def delete_model(self, request: HttpRequest, obj: Connection) -> None:
        services.connection_delete(name=obj.name, force=_force_requested(request), actor=request.user,
                                   request=request)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Connection]) -> None:
        for connection in list(queryset):
            services.connection_delete(name=connection.name, force=False, actor=request.user, request=request)

    def delete_view(self, request: HttpRequest, object_id: str,
                    extra_context: dict[str, Any] | None = None) -> HttpResponse:
        extra = {**(extra_context or {}), "force": _force_requested(request),
                 "has_dependants": self._has_dependants(object_id)}
        try:
            return super().delete_view(request, object_id, extra)
        except (SynthorgError, ProtectedError) as exc:
            # The admin's transaction rolled back its log entry with the refused delete.
            self.message_user(request, _error_text(exc), messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())

    def _has_dependants(self, object_id: str) -> bool:
        obj = Connection.objects.filter(pk=object_id).first() if str(object_id).isdigit() else None
        return obj is not None and any(d.list_names(obj) for d in dependants.registered())

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)
        if "delete_selected" in actions:
            _, name, description = actions["delete_selected"]
            actions["delete_selected"] = (_delete_selected_through_services, name, description)
        return actions


def _config_display(field: str) -> Callable[[Connection], str]:
    def display(obj: Connection) -> str:
        spec = next((s for s in get_type(obj.connection_type).fields if s.name == field), None)
        if spec is None or spec.secret:
            return "—"  # secret values are never read here
        value = obj.config.get(field)
        if value is None or value == "":
            return "—" if spec.default in (None, "") else f"(default: {spec.default})"
        if isinstance(value, list):
            return " ".join(str(item) for item in value)
        return str(value)

    display.short_description = field  # type: ignore[attr-defined]
    return display


def _webhook_url_display(obj: Connection) -> str:
    return webhook_url(obj.name, current_request()) or "(set SYNTHORG_PUBLIC_URL or start the tunnel)"


_webhook_url_display.short_description = "webhook URL"  # type: ignore[attr-defined]


def _error_text(exc: Exception) -> str:
    if isinstance(exc, SynthorgError):
        return str(exc.detail)
    return "The connection is still referenced by other records; remove those first."


def _delete_selected_through_services(modeladmin: ConnectionAdmin, request: HttpRequest,
                                      queryset: QuerySet[Connection]) -> HttpResponse | None:
    """Django's bulk delete (confirmation page included), all or nothing, through the services."""
    try:
        with transaction.atomic():
            return delete_selected(modeladmin, request, queryset)
    except (SynthorgError, ProtectedError) as exc:
        modeladmin.message_user(request, _error_text(exc), messages.ERROR)
        return None


_delete_selected_through_services.short_description = delete_selected.short_description  # type: ignore[attr-defined]


# The tunnel page registers itself on the admin site (autodiscovery imports only admin.py).
from integrations import admin_tunnel  # noqa: E402, F401
