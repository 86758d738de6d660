"""Catalog installations and verify jobs. No secret value is ever stored here.

An installation points at a catalog entry by id and (when the entry needs one) at a
connection; credentials stay in the connection's secret backend and are resolved only
when the configuration is materialised for launch.
"""
from __future__ import annotations

import uuid

from django.db import models


class Installation(models.Model):
    entry_id = models.CharField(max_length=64, unique=True)
    # PROTECT: the database refuses to drop a connection an installation uses; the
    # connection service removes installations first (dependant hook) only when forced.
    connection = models.ForeignKey("integrations.Connection", null=True, blank=True, on_delete=models.PROTECT,
                                   related_name="mcp_installations")
    options = models.JSONField(default=dict, blank=True)
    installed_by = models.CharField(max_length=150, blank=True)
    installed_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "mcp_installations"
        ordering = ["entry_id"]
        permissions = [("verify_installation", "Can launch an installed MCP server to verify it")]

    def __str__(self) -> str:
        return self.entry_id


class CatalogPage(Installation):
    """No data of its own: the MCP server catalog's entry in the admin's sidebar and on the
    dashboard (issue 13 §6; it was reachable only through Installations). Its changelist URL
    shows the catalog page; seeing it takes the permission to view installations."""

    class Meta:
        proxy = True
        verbose_name = "MCP server catalog"
        verbose_name_plural = "MCP server catalog"
        default_permissions = ()


class VerifyJob(models.Model):
    """One verify run: launched by a worker, polled by the caller."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    entry_id = models.CharField(max_length=64, db_index=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    tools = models.JSONField(default=list, blank=True)
    error = models.CharField(max_length=1000, blank=True)
    requested_by = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "mcp_verify_jobs"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"verify {self.entry_id} ({self.status})"
