from __future__ import annotations

from django.urls import path

from catalog.api import views
from integrations.api import tunnel_views

urlpatterns = [
    path("integrations/mcp/catalog", views.CatalogListApi.as_view(), name="mcp-catalog"),
    path("integrations/mcp/catalog/search", views.CatalogSearchApi.as_view(), name="mcp-catalog-search"),
    path("integrations/mcp/catalog/install", views.InstallApi.as_view(), name="mcp-install"),
    path("integrations/mcp/catalog/install/<str:entry_id>", views.UninstallApi.as_view(), name="mcp-uninstall"),
    path("integrations/mcp/catalog/install/<str:entry_id>/verify", views.VerifyApi.as_view(), name="mcp-verify"),
    path("integrations/mcp/catalog/<str:entry_id>", views.CatalogEntryApi.as_view(), name="mcp-catalog-entry"),
    path("integrations/mcp/installed", views.InstalledListApi.as_view(), name="mcp-installed"),
    path("integrations/mcp/config", views.McpConfigApi.as_view(), name="mcp-config"),
    path("integrations/mcp/verify-jobs/<uuid:job_id>", views.VerifyJobApi.as_view(), name="mcp-verify-job"),
    path("integrations/tunnel/start", tunnel_views.TunnelStartApi.as_view(), name="tunnel-start"),
    path("integrations/tunnel/stop", tunnel_views.TunnelStopApi.as_view(), name="tunnel-stop"),
    path("integrations/tunnel/status", tunnel_views.TunnelStatusApi.as_view(), name="tunnel-status"),
]
