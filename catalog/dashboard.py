"""The admin index card for the MCP server catalog: a way in to the catalog page itself."""
from __future__ import annotations

from django.http import HttpRequest
from django.urls import reverse

from catalog import selectors
from synthorg.dashboard import Card, Stat


def catalog_card(request: HttpRequest) -> Card | None:
    # As the catalog page itself: for those who may view installations (or change them).
    if not (request.user.has_perm("catalog.view_installation") or request.user.has_perm("catalog.change_installation")):
        return None
    page = reverse("admin:catalog_catalogpage_changelist")
    installations = reverse("admin:catalog_installation_changelist")
    entries = selectors.catalog_list()
    installed = selectors.installed_entry_ids()
    stats = [Stat("servers in the catalog", len(entries), page),
             Stat("installed", len(installed & {e.id for e in entries}), installations)]
    return Card(title="MCP server catalog", stats=stats, note="Browse, install and verify MCP servers.", order=50)
