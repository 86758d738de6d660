"""Provider configs in the admin: saves and deletes go through providers.services (validated, audited).

Secret inputs are write-only: never rendered back, blank keeps the stored value, and a
checkbox removes the deprecated embedded credentials (the migration to a connection).
"""
from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest

from providers import destination, services
from providers.models import ProviderConfig
from synthorg.errors import SynthorgError, ValidationFailed

_KEEP = "Write-only: leave blank to keep the stored value. DEPRECATED: reference a connection instead."


class _DryRun(Exception):
    """Raised inside a savepoint to roll back a service call made only to validate the form."""


class ProviderConfigForm(forms.ModelForm):
    api_key = forms.CharField(required=False, strip=False, help_text=_KEEP,
                              widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}))
    oauth_client_id = forms.CharField(required=False, help_text="DEPRECATED embedded OAuth client id "
                                                                 "(blank keeps the stored value)")
    oauth_client_secret = forms.CharField(required=False, strip=False, help_text=_KEEP,
                                          widget=forms.PasswordInput(render_value=False,
                                                                     attrs={"autocomplete": "off"}))
    oauth_token_url = forms.CharField(required=False, help_text="DEPRECATED embedded OAuth token URL "
                                                                 "(blank keeps the stored value)")
    clear_embedded = forms.BooleanField(required=False, label="Remove embedded credentials",
                                        help_text="Delete every deprecated embedded credential of this provider.")

    # The admin's request (set by ProviderConfigAdmin.get_form): the validating dry run acts as
    # its user, so a rule that depends on who acts (the destination rule) is checked on the form.
    request: HttpRequest | None = None

    class Meta:
        model = ProviderConfig
        fields = ["name", "driver", "base_url", "model", "connection"]

    def service_arguments(self) -> dict[str, Any]:
        """The cleaned form as keyword arguments of provider_create / the data of provider_update."""
        data = self.cleaned_data
        connection = data.get("connection")
        args: dict[str, Any] = {"driver": data.get("driver") or "", "base_url": data.get("base_url") or "",
                                "model": data.get("model") or "",
                                "connection_name": connection.name if connection else None}
        if data.get("clear_embedded"):
            args.update(dict.fromkeys(("api_key", "oauth_client_id", "oauth_client_secret", "oauth_token_url",
                                       "oauth_scopes")))
        else:
            # Blank inputs keep what is stored (secrets are never rendered back into the form).
            for key in ("api_key", "oauth_client_id", "oauth_client_secret", "oauth_token_url"):
                if data.get(key):
                    args[key] = data[key]
        return args

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if self.errors:
            return cleaned
        # Validate with the service itself (one set of rules for API and admin), rolled back.
        user = getattr(self.request, "user", None)
        try:
            with transaction.atomic():
                _call_service(self, actor=user, request=self.request)
                raise _DryRun
        except _DryRun:
            pass
        except destination.ProviderBindingForbidden as exc:
            # The dry run's rollback took the refusal's audit event with it: write it again.
            action = "provider.create" if self.instance.pk is None else "provider.update"
            destination.record_refusal(exc, action=action, actor=user, request=self.request)
            self.add_error("base_url" if "base_url" in self.fields else None, exc.detail)
        except ValidationFailed as exc:
            for key, rules in (exc.errors or {}).items():
                field = "connection" if key == "connection_name" else key
                self.add_error(field if field in self.fields else None, "; ".join(rules))
        except SynthorgError as exc:
            self.add_error(None, exc.detail)
        return cleaned


def _call_service(form: ProviderConfigForm, *, actor: Any, request: HttpRequest | None) -> ProviderConfig:
    args = form.service_arguments()
    if form.instance.pk is None:
        args = {k: v for k, v in args.items() if k in {"driver", "base_url", "model", "connection_name"}
                or v is not None}
        return services.provider_create(name=form.cleaned_data["name"], actor=actor, request=request, **args)
    return services.provider_update(name=form.instance.name, data=args, actor=actor, request=request)


@admin.register(ProviderConfig)
class ProviderConfigAdmin(admin.ModelAdmin):
    form = ProviderConfigForm
    list_display = ["name", "driver", "model", "connection_name", "credentials_source", "updated_at"]
    list_filter = ["driver"]
    search_fields = ["name", "model"]
    list_select_related = ["connection"]
    fieldsets = [
        (None, {"fields": ["name", "driver", "base_url", "model", "connection"]}),
        ("Deprecated embedded credentials", {
            "classes": ["collapse"],
            "fields": ["embedded_fields", "api_key", "oauth_client_id", "oauth_client_secret", "oauth_token_url",
                       "clear_embedded"]}),
    ]
    readonly_fields = ["embedded_fields"]

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        form = super().get_form(request, obj, change=change, **kwargs)
        return type(form.__name__, (form,), {"request": request})

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        # Names are fixed after creation (they appear in URLs and audit history).
        return ["name", "embedded_fields"] if obj is not None else ["embedded_fields"]

    @admin.display(description="connection")
    def connection_name(self, obj: ProviderConfig) -> str:
        return obj.connection.name if obj.connection_id else "—"

    @admin.display(description="credentials")
    def credentials_source(self, obj: ProviderConfig) -> str:
        if obj.connection_id:
            return "connection"
        return "embedded (deprecated)" if obj.embedded_fields else "none"

    def save_model(self, request: HttpRequest, obj: ProviderConfig, form: Any, change: bool) -> None:
        saved = _call_service(form, actor=request.user, request=request)
        # The admin logs and redirects with this object; give it the saved row's identity.
        obj.pk, obj.name = saved.pk, saved.name

    def delete_model(self, request: HttpRequest, obj: ProviderConfig) -> None:
        services.provider_delete(name=obj.name, actor=request.user, request=request)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[ProviderConfig]) -> None:
        for name in queryset.values_list("name", flat=True):
            services.provider_delete(name=name, actor=request.user, request=request)
