from __future__ import annotations

from django.apps import AppConfig


class CatalogConfig(AppConfig):
    name = "catalog"
    verbose_name = "MCP catalog"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from catalog import (
            checks,  # noqa: F401  (registers catalog.E001)
            services,
        )
        from catalog.dashboard import catalog_card
        from integrations import dependants, tunnel
        from synthorg import dashboard, public_url

        dashboard.register("catalog", catalog_card)

        dependants.register("catalog", dependants.Dependant(
            label="MCP installations",
            list_names=services.installations_for_connection,
            remove=services.installations_remove_for_connection,
        ))
        # While a tunnel is up, webhook URLs everywhere use its public URL.
        public_url.register_provider(tunnel.tunnel_public_url)
