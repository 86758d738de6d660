"""Admin: the catalog page (browse, search, install, uninstall, verify), installations and verify jobs.

Every page here is a shell over `catalog.selectors` and `catalog.services`. The controls
that change state are POST-only views, protected by CSRF (the admin site wraps them) and by
their own permission, each calling one service:

=========================  ===============================  ==============================
control                    URL name (``admin:`` namespace)  action (`synthorg.permissions`)
=========================  ===============================  ==============================
install / update           ``catalog_install``              ``mcp.install``
uninstall                  ``catalog_uninstall``            ``mcp.uninstall``
verify (queue a job)       ``catalog_verify``               ``mcp.verify``
=========================  ===============================  ==============================

Verify runs as the existing Celery job (`verify_job_create`); the entry page shows the
job's state and tool list, and refreshes itself while a job is queued or running.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.decorators import method_decorator
from django.views.decorators.http import require_GET, require_POST

from catalog import selectors, services
from catalog.entries import CatalogEntry, OptionSpec, bundled_catalog
from catalog.models import CatalogPage, Installation, VerifyJob
from integrations.selectors import connection_list
from synthorg import permissions
from synthorg.admin import RecordAdmin
from synthorg.errors import SynthorgError

INSTALL_ACTION = "mcp.install"
UNINSTALL_ACTION = "mcp.uninstall"
VERIFY_ACTION = "mcp.verify"
# Jobs shown on an entry's page (the verify job list has the rest).
RECENT_JOBS = 5
# While a verify job is queued or running the entry page reloads itself this often.
JOB_REFRESH_SECONDS = 3


class InstallForm(forms.Form):
    """The install form of one entry: a connection picker (only fitting connections) and its options."""

    def __init__(self, entry: CatalogEntry, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.entry = entry
        if entry.connection_type:
            candidates = connection_list(connection_type=entry.connection_type)
            if entry.connection_dialect:
                candidates = [c for c in candidates if c.config.get("dialect") == entry.connection_dialect]
            need = entry.connection_type + (f" ({entry.connection_dialect})" if entry.connection_dialect else "")
            self.fields["connection_name"] = forms.ChoiceField(
                label="Connection", choices=[("", "---------")] + [(c.name, c.name) for c in candidates],
                required=False, help_text=f"A {need} connection; its credentials are resolved only at launch.")
        for name, spec in entry.options.items():
            self.fields[f"option_{name}"] = _option_field(spec)

    def service_arguments(self) -> dict[str, Any]:
        """What `installation_install` takes; the service does the validating."""
        cleaned = self.cleaned_data
        options: dict[str, Any] = {}
        for name, spec in self.entry.options.items():
            value = cleaned.get(f"option_{name}")
            if spec.type == "directory_list":
                value = [line.strip() for line in (value or "").splitlines() if line.strip()] or None
            options[name] = value or None
        return {"connection_name": cleaned.get("connection_name") or None, "options": options}

    def add_service_errors(self, exc: SynthorgError) -> None:
        errors = getattr(exc, "errors", None) or {}
        placed = False
        for key, problems in errors.items():
            field = "connection_name" if key == "connection_name" else f"option_{key.removeprefix('options.')}"
            if field in self.fields:
                for problem in problems:
                    self.add_error(field, problem)
                placed = True
        if not placed:
            self.add_error(None, str(exc.detail))


def _option_field(spec: OptionSpec) -> forms.Field:
    if spec.type == "directory_list":
        return forms.CharField(label=spec.name, required=False, help_text=f"{spec.description} (one per line)",
                               widget=forms.Textarea(attrs={"rows": 3, "cols": 60}))
    return forms.CharField(label=spec.name, required=False, help_text=spec.description,
                           widget=forms.TextInput(attrs={"size": 60}))


def _initial(entry: CatalogEntry, installation: Installation | None) -> dict[str, Any]:
    if installation is None:
        return {}
    initial: dict[str, Any] = {"connection_name": installation.connection.name if installation.connection else ""}
    for name, value in installation.options.items():
        initial[f"option_{name}"] = "\n".join(value) if isinstance(value, list) else value
    return initial


@admin.register(Installation)
class InstallationAdmin(admin.ModelAdmin):
    list_display = ("entry_id", "entry_name", "connection", "installed_by", "installed_at", "updated_at")
    search_fields = ("entry_id", "connection__name")
    list_select_related = ("connection",)
    readonly_fields = ("entry_id", "connection", "options", "installed_by", "installed_at", "updated_at")
    actions = ("verify_selected", "uninstall_selected")
    change_list_template = "admin/catalog/installation/change_list.html"

    @admin.display(description="name")
    def entry_name(self, obj: Installation) -> str:
        entry = bundled_catalog().get(obj.entry_id)
        return entry.name if entry else "(no longer in the catalog)"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # installs go through the catalog (validation, audit)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # edited by installing again from the catalog page

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # the uninstall action audits; the bulk delete would not

    @admin.action(description="Verify (queue a launch on a worker)", permissions=["verify"])
    def verify_selected(self, request: HttpRequest, queryset: QuerySet[Installation]) -> None:
        for installation in queryset:
            job = services.verify_job_create(entry_id=installation.entry_id, actor=request.user, request=request)
            self.message_user(request, f"Verify of {installation.entry_id} queued (job {job.pk}).")

    def has_verify_permission(self, request: HttpRequest) -> bool:
        return permissions.allowed(request.user, VERIFY_ACTION)

    @admin.action(description="Uninstall", permissions=["uninstall"])
    def uninstall_selected(self, request: HttpRequest, queryset: QuerySet[Installation]) -> None:
        for entry_id in list(queryset.values_list("entry_id", flat=True)):
            services.installation_uninstall(entry_id=entry_id, actor=request.user, request=request)
        self.message_user(request, "Uninstalled.", messages.SUCCESS)

    def has_uninstall_permission(self, request: HttpRequest) -> bool:
        return permissions.allowed(request.user, UNINSTALL_ACTION)

    # --- the catalog pages ------------------------------------------------------------------

    def get_urls(self) -> list[URLPattern]:
        def wrap(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
            return self.admin_site.admin_view(view)

        return [
            path("catalog/", wrap(self.catalog_view), name="catalog_browse"),
            path("catalog/<str:entry_id>/", wrap(self.entry_view), name="catalog_entry"),
            path("catalog/<str:entry_id>/install/", wrap(self.install_view), name="catalog_install"),
            path("catalog/<str:entry_id>/uninstall/", wrap(self.uninstall_view), name="catalog_uninstall"),
            path("catalog/<str:entry_id>/verify/", wrap(self.verify_view), name="catalog_verify"),
            *super().get_urls(),
        ]

    def _context(self, request: HttpRequest, title: str, **extra: Any) -> dict[str, Any]:
        return {**self.admin_site.each_context(request), "opts": self.opts, "title": title, "subtitle": None,
                "has_view_permission": self.has_view_permission(request), **extra}

    def _entry_or_404(self, entry_id: str) -> CatalogEntry:
        try:
            return selectors.catalog_entry_get(entry_id)
        except SynthorgError as exc:
            from django.http import Http404

            raise Http404(str(exc.detail)) from None

    @staticmethod
    def _entry_url(entry_id: str) -> str:
        return reverse("admin:catalog_entry", args=[entry_id])

    @staticmethod
    def _catalog_disabled(request: HttpRequest) -> str | None:
        try:
            selectors.catalog_require_enabled()
        except SynthorgError as exc:
            return str(exc.detail)
        return None

    def catalog_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        query = request.GET.get("q", "").strip()[:200]
        entries = selectors.catalog_search(query) if query else selectors.catalog_list()
        installed = selectors.installed_entry_ids()
        cards = [{"entry": e, "installed": e.id in installed, "url": self._entry_url(e.id)} for e in entries]
        return TemplateResponse(request, "admin/catalog/catalog.html", self._context(
            request, "MCP server catalog", query=query, cards=cards, disabled=self._catalog_disabled(request)))

    @staticmethod
    def _page_state(entry: CatalogEntry) -> tuple[Installation | None, list[VerifyJob]]:
        installation = selectors.installation_list().filter(entry_id=entry.id).first()
        jobs = list(VerifyJob.objects.filter(entry_id=entry.id).order_by("-created_at")[:RECENT_JOBS])
        return installation, jobs

    def _render_entry(self, request: HttpRequest, entry: CatalogEntry, form: InstallForm | None = None,
                      status: int = 200) -> HttpResponse:
        installation, jobs = self._page_state(entry)
        form = form or InstallForm(entry, initial=_initial(entry, installation))
        pending = any(job.status in (VerifyJob.Status.QUEUED, VerifyJob.Status.RUNNING) for job in jobs)
        user = request.user
        context = self._context(
            request, f"MCP server: {entry.name}", entry=entry, installation=installation, jobs=jobs, form=form,
            refresh_seconds=JOB_REFRESH_SECONDS if pending else None,
            can_install=permissions.allowed(user, INSTALL_ACTION),
            can_uninstall=permissions.allowed(user, UNINSTALL_ACTION),
            can_verify=permissions.allowed(user, VERIFY_ACTION), disabled=self._catalog_disabled(request),
            catalog_url=reverse("admin:catalog_browse"))
        return TemplateResponse(request, "admin/catalog/entry.html", context, status=status)

    @method_decorator(require_GET)
    def entry_view(self, request: HttpRequest, entry_id: str) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        return self._render_entry(request, self._entry_or_404(entry_id))

    @method_decorator(require_POST)
    def install_view(self, request: HttpRequest, entry_id: str) -> HttpResponse:
        permissions.require(request.user, INSTALL_ACTION)
        entry = self._entry_or_404(entry_id)
        form = InstallForm(entry, request.POST)
        if not form.is_valid():
            return self._render_entry(request, entry, form, status=422)
        try:
            selectors.catalog_require_enabled()
            outcome = services.installation_install(entry_id=entry.id, actor=request.user, request=request,
                                                    **form.service_arguments())
        except SynthorgError as exc:
            form.add_service_errors(exc)
            return self._render_entry(request, entry, form, status=exc.status_code)
        if outcome.created:
            text = f"{entry.name} installed."
        elif outcome.changed:
            text = f"{entry.name}: installation updated."
        else:
            text = f"{entry.name} was already installed with these settings; nothing changed."
        self.message_user(request, text, messages.SUCCESS)
        return HttpResponseRedirect(self._entry_url(entry.id))

    @method_decorator(require_POST)
    def uninstall_view(self, request: HttpRequest, entry_id: str) -> HttpResponse:
        permissions.require(request.user, UNINSTALL_ACTION)
        entry = self._entry_or_404(entry_id)
        removed = services.installation_uninstall(entry_id=entry.id, actor=request.user, request=request)
        self.message_user(request, f"{entry.name} uninstalled." if removed else f"{entry.name} was not installed.",
                          messages.SUCCESS)
        return HttpResponseRedirect(self._entry_url(entry.id))

    @method_decorator(require_POST)
    def verify_view(self, request: HttpRequest, entry_id: str) -> HttpResponse:
        permissions.require(request.user, VERIFY_ACTION)
        entry = self._entry_or_404(entry_id)
        try:
            job = services.verify_job_create(entry_id=entry.id, actor=request.user, request=request)
        except SynthorgError as exc:
            self.message_user(request, str(exc.detail), messages.ERROR)
        else:
            self.message_user(request, f"Verify of {entry.name} queued (job {job.pk}); this page follows it.",
                              messages.SUCCESS)
        return HttpResponseRedirect(self._entry_url(entry.id))


@admin.register(VerifyJob)
class VerifyJobAdmin(RecordAdmin):
    list_display = ("entry_id", "status", "requested_by", "created_at", "finished_at", "error")
    list_filter = ("status", "entry_id")
    readonly_fields = ("id", "entry_id", "status", "tools", "error", "requested_by", "created_at", "started_at",
                       "finished_at")


@admin.register(CatalogPage)
class CatalogPageAdmin(admin.ModelAdmin):
    """The catalog's own sidebar and dashboard entry: its changelist is the catalog page."""

    def _installations(self) -> InstallationAdmin:
        return self.admin_site.get_model_admin(Installation)  # type: ignore[return-value]

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._installations().has_view_permission(request, obj)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        return self._installations().catalog_view(request)
