from __future__ import annotations

from django.apps import AppConfig


class ProvidersConfig(AppConfig):
    name = "providers"
    verbose_name = "Providers"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from integrations.dependants import Dependant, register
        from providers import selectors, services

        # Deleting a referenced connection is refused (409 naming the providers) unless forced;
        # forced, the providers are deleted through provider_delete (audited), see its docstring.
        register("providers", Dependant(label="provider configs",
                                        list_names=selectors.provider_names_for_connection,
                                        remove=services.provider_remove_for_connection))

        from integrations.dependants import register_destination_change
        from providers import destination

        # A connection moved by its owner (with its secrets): approvals of bindings outside its URL lapse.
        register_destination_change("providers", destination.on_connection_moved)

        from integrations.secrets import rotation

        # `manage.py rotate_master_key` re-encrypts the embedded credentials too.
        rotation.register("providers", services.provider_secrets_rotate)

        from integrations.secrets import managed
        from providers.models import ProviderConfig

        # Under a secret manager embedded credentials live there; secrets_migrate moves them (issue 14).
        managed.register_column(managed.SealedColumn(managed.PROVIDERS, ProviderConfig, "embedded_ciphertext",
                                                     "embedded_key_id"))
