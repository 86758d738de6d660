"""Admin: installations (with verify and uninstall actions) and verify jobs; actions call services.

The catalog browsing page, install form and tunnel card belong to the operator console
(issue 8), which builds on these services.
"""
from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from catalog import services
from catalog.entries import bundled_catalog
from catalog.models import Installation, VerifyJob


@admin.register(Installation)
class InstallationAdmin(admin.ModelAdmin):
    list_display = ("entry_id", "entry_name", "connection", "installed_by", "installed_at", "updated_at")
    search_fields = ("entry_id", "connection__name")
    readonly_fields = ("entry_id", "connection", "options", "installed_by", "installed_at", "updated_at")
    actions = ("verify_selected", "uninstall_selected")

    @admin.display(description="name")
    def entry_name(self, obj: Installation) -> str:
        entry = bundled_catalog().get(obj.entry_id)
        return entry.name if entry else "(no longer in the catalog)"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # installs go through the catalog (validation, audit)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # the uninstall action audits; the bulk delete would not

    @admin.action(description="Verify (queue a launch on a worker)", permissions=["verify"])
    def verify_selected(self, request: HttpRequest, queryset: QuerySet[Installation]) -> None:
        for installation in queryset:
            job = services.verify_job_create(entry_id=installation.entry_id, actor=request.user, request=request)
            self.message_user(request, f"Verify of {installation.entry_id} queued (job {job.pk}).")

    def has_verify_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.is_staff or request.user.has_perm("catalog.verify_installation"))

    @admin.action(description="Uninstall", permissions=["uninstall"])
    def uninstall_selected(self, request: HttpRequest, queryset: QuerySet[Installation]) -> None:
        for entry_id in list(queryset.values_list("entry_id", flat=True)):
            services.installation_uninstall(entry_id=entry_id, actor=request.user, request=request)
        self.message_user(request, "Uninstalled.", messages.SUCCESS)

    def has_uninstall_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.has_perm("catalog.delete_installation"))


@admin.register(VerifyJob)
class VerifyJobAdmin(admin.ModelAdmin):
    list_display = ("entry_id", "status", "requested_by", "created_at", "finished_at", "error")
    list_filter = ("status",)
    readonly_fields = ("id", "entry_id", "status", "tools", "error", "requested_by", "created_at", "started_at",
                       "finished_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
