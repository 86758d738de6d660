"""`catalog.E001`: a broken bundled catalog stops every process at startup, naming the problem."""
from __future__ import annotations

from typing import Any

from django.core import checks

from catalog import entries


@checks.register()
def bundled_catalog_check(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    try:
        entries.load_catalog(entries.BUNDLED_PATH)
    except entries.CatalogInvalid as exc:
        return [checks.Error(f"The bundled MCP catalog is invalid: {exc}", id="catalog.E001",
                             hint="Restore catalog/bundled.json from the release, or fix the entry named.")]
    return []
