"""Admin forms for connections, built from the type registry.

The change form of a connection is generated from `get_type(t).fields`: non-secret fields
show their stored value; secret fields are write-only (`PasswordInput(render_value=False)`,
blank keeps the stored value, a "clear" box removes it) and no secret value is ever put
into a form's initial data, so nothing can render one.

Saving goes through `integrations.services` from `clean()`: the service validates every
rule before it writes anything, so its 422/409 errors land on the form fields and the
page is shown again with nothing written (the admin's change view runs inside one
transaction, which also rolls back the service's audit row if anything later fails).
"""
from __future__ import annotations

import re
from typing import Any, ClassVar

from django import forms
from django.core.validators import RegexValidator
from django.http import HttpRequest
from django.views.decorators.debug import sensitive_variables

from integrations import services
from integrations.models import CONNECTION_NAME_PATTERN, RESERVED_NAMES, Connection
from integrations.types import REGISTRY, ConnectionType, FieldSpec
from integrations.validation import SECRET_MAX_CHARS, VALUE_MAX_CHARS
from synthorg.errors import SynthorgError, ValidationFailed
from synthorg.public_url import webhook_url

FIELD_PREFIX = "field_"
CLEAR_PREFIX = "clear_"
LIMIT_FIELDS = {
    "rate_limit.requests_per_minute": "rate_limit_rpm",
    "rate_limit.burst": "rate_limit_burst",
    "rate_limit.max_concurrent": "rate_limit_max_concurrent",
    "health_check.enabled": "health_check_enabled",
    "health_check.interval_seconds": "health_check_interval_seconds",
}
_LIST_SPLIT = re.compile(r"[\s,]+")


def type_choices() -> list[tuple[str, str]]:
    return [(t.name, f"{t.label} ({t.name})") for t in REGISTRY.values()]


def _check_name(value: str) -> None:
    if value.lower() in RESERVED_NAMES:
        raise forms.ValidationError(f"{value!r} is reserved (used as a sub-path of /api/v1/connections/).")


class ConnectionTypeChoiceForm(forms.Form):
    """Step one of adding a connection: its name and type (the type decides the other fields)."""

    name = forms.CharField(
        max_length=128, help_text="letters, digits, '.', '_' and '-'; it appears in URLs and cannot change later",
        validators=[RegexValidator(CONNECTION_NAME_PATTERN, "Use letters, digits, '.', '_' and '-', starting "
                                   "with a letter or digit."), _check_name])
    connection_type = forms.ChoiceField(choices=type_choices, help_text="cannot change later")


def _spec_field(spec: FieldSpec, *, add: bool, is_set: bool, destinations: str = "") -> forms.Field:
    label = spec.name
    if spec.secret:
        if add:
            state = "Write-only: the value is never shown again."
        elif is_set:
            state = "Set. Leave blank to keep the stored value; tick \u201cclear\u201d to remove it."
            if destinations:
                state += f" Required again when you change {destinations}."
        else:
            state = "Not set. Leave blank to keep it unset."
        return forms.CharField(label=label, required=False, strip=False,
                               widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
                               help_text=" ".join(p for p in (spec.help, state) if p))
    help_text = spec.help
    if spec.default not in (None, "", [], {}):
        help_text = f"{help_text} (default: {spec.default})".strip()
    if destinations and not add:
        # Issue 12: a secret is bound to where it is sent; say so before the save is refused.
        help_text = f"{help_text} Changing this needs every stored secret entered again.".strip()
    if spec.choices:
        choices = [(c, c) for c in spec.choices]
        if not spec.required:
            choices = [("", "(default)" if spec.default is not None else "(not set)"), *choices]
        return forms.ChoiceField(label=label, choices=choices, required=spec.required, help_text=help_text)
    if spec.kind == "integer":
        return forms.IntegerField(label=label, required=spec.required, help_text=help_text)
    if spec.kind == "boolean":
        widget = forms.NullBooleanSelect()
        widget.choices = [("unknown", "(default)"), ("true", "Yes"), ("false", "No")]
        return forms.NullBooleanField(label=label, required=False, help_text=help_text, widget=widget)
    if spec.kind == "list":
        return forms.CharField(label=label, required=spec.required, help_text=f"{help_text} (separate with spaces)"
                               .strip())
    if spec.kind == "mapping":
        return forms.JSONField(label=label, required=spec.required, help_text=help_text)
    return forms.CharField(label=label, required=spec.required, help_text=help_text,
                           max_length=SECRET_MAX_CHARS if spec.secret else VALUE_MAX_CHARS, strip=True)


def _to_form_value(spec: FieldSpec, value: Any) -> Any:
    if spec.kind == "list" and isinstance(value, list):
        return " ".join(value)
    return value


def _from_form_value(spec: FieldSpec, value: Any) -> Any:
    """The cleaned form value as the service expects it; None means "not set"."""
    if value in (None, "") or (spec.kind == "mapping" and value == {} and spec.default in (None, {})
                               and not spec.required):
        return None
    if spec.kind == "list":
        return [item for item in _LIST_SPLIT.split(value) if item]
    return value


class ConnectionForm(forms.ModelForm):
    """Base of the per-type forms `connection_form_class()` builds; never used bare for a save."""

    connection_type_spec: ClassVar[ConnectionType | None] = None
    request: ClassVar[HttpRequest | None] = None

    class Meta:
        model = Connection
        fields: list[str] = []

    rate_limit_rpm = forms.IntegerField(label="requests per minute", min_value=0, initial=0, required=False,
                                        help_text="0 = unlimited")
    rate_limit_burst = forms.IntegerField(label="burst", min_value=0, initial=0, required=False,
                                          help_text="extra requests allowed at once; 0 = none")
    rate_limit_max_concurrent = forms.IntegerField(label="max concurrent", min_value=0, initial=0, required=False,
                                                   help_text="0 = unlimited")
    health_check_enabled = forms.BooleanField(label="health checks enabled", initial=True, required=False)
    health_check_interval_seconds = forms.IntegerField(
        label="health check interval (seconds)", required=False,
        help_text="blank = the global integrations.health.check_interval_seconds")
    metadata = forms.JSONField(required=False, initial=dict, help_text="free-form JSON object")
    expires_at = forms.DateTimeField(label="credential expires at", required=False,
                                     help_text="e.g. 2027-01-31 12:00 (UTC); alerts warn ahead. Blank: no known expiry")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        connection = self.instance
        if connection.pk is None:
            return
        ctype = self.connection_type_spec
        for spec in ctype.fields if ctype else ():
            if not spec.secret and spec.name in connection.config:
                self.initial[FIELD_PREFIX + spec.name] = _to_form_value(spec, connection.config[spec.name])
        self.initial.update({
            "rate_limit_rpm": connection.rate_limit_rpm,
            "rate_limit_burst": connection.rate_limit_burst,
            "rate_limit_max_concurrent": connection.rate_limit_max_concurrent,
            "health_check_enabled": connection.health_check_enabled,
            "health_check_interval_seconds": connection.health_check_interval_seconds,
            "metadata": connection.metadata,
            "expires_at": connection.expires_at,
        })

    # Model validation belongs to the service (it owns every rule, including the
    # case-insensitive unique name), and the instance here is the service's result.
    def _post_clean(self) -> None:
        return None

    @property
    def adding(self) -> bool:
        return self.instance.pk is None

    @sensitive_variables()
    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        ctype = self.connection_type_spec
        if ctype is None:
            raise forms.ValidationError("Choose a connection type first.")
        for spec in ctype.fields:
            if spec.secret and cleaned.get(FIELD_PREFIX + spec.name) and cleaned.get(CLEAR_PREFIX + spec.name):
                self.add_error(CLEAR_PREFIX + spec.name, "Give a new value or clear it, not both.")
        if self.errors:
            return cleaned  # shape errors first; the service is called only with a clean form
        try:
            if self.adding:
                self.instance = services.connection_create(
                    name=cleaned["name"], connection_type=ctype.name, credentials=self._credentials(cleaned),
                    rate_limit=self._rate_limit(cleaned), health_check=self._health_check(cleaned),
                    metadata=cleaned.get("metadata") or {}, expires_at=cleaned.get("expires_at"),
                    actor=self._actor(), request=self.request)
            else:
                data = {"credentials": self._credentials(cleaned), "rate_limit": self._rate_limit(cleaned),
                        "health_check": self._health_check(cleaned), "metadata": cleaned.get("metadata") or {},
                        "expires_at": cleaned.get("expires_at")}
                self.instance = services.connection_update(name=self.instance.name, data=data,
                                                           actor=self._actor(), request=self.request)
        except ValidationFailed as exc:
            self._add_service_errors(exc)
        except services.SecretsRequired as exc:
            self._require_secrets(exc)
        except SynthorgError as exc:
            self.add_error(None, str(exc.detail))
        return cleaned

    def _actor(self) -> Any:
        return getattr(self.request, "user", None)

    @sensitive_variables()
    def _credentials(self, cleaned: dict[str, Any]) -> dict[str, Any]:
        ctype = self.connection_type_spec
        assert ctype is not None
        credentials: dict[str, Any] = {}
        for spec in ctype.fields:
            raw = cleaned.get(FIELD_PREFIX + spec.name)
            if spec.secret:
                if cleaned.get(CLEAR_PREFIX + spec.name):
                    credentials[spec.name] = None
                elif raw:
                    credentials[spec.name] = raw
                continue  # blank: keep what is stored
            value = _from_form_value(spec, raw)
            if value is not None or not self.adding:
                # On change a blank optional field is removed (the service then applies its default).
                credentials[spec.name] = value
        return credentials

    @staticmethod
    def _rate_limit(cleaned: dict[str, Any]) -> dict[str, int]:
        return {"requests_per_minute": cleaned.get("rate_limit_rpm") or 0,
                "burst": cleaned.get("rate_limit_burst") or 0,
                "max_concurrent": cleaned.get("rate_limit_max_concurrent") or 0}

    @staticmethod
    def _health_check(cleaned: dict[str, Any]) -> dict[str, Any]:
        return {"enabled": bool(cleaned.get("health_check_enabled")),
                "interval_seconds": cleaned.get("health_check_interval_seconds")}

    def _require_secrets(self, exc: services.SecretsRequired) -> None:
        """A destination field changed: the secret inputs become required, each with the reason."""
        moved = ", ".join(exc.destination_fields)
        for name in exc.fields:
            field = self.fields.get(FIELD_PREFIX + name)
            if field is None:  # env_var: no input can take it
                continue
            field.required = True
            self.add_error(FIELD_PREFIX + name, f"Required: changing {moved} decides where {name} is sent, so "
                                                f"enter {name} again (or tick \u201cclear {name}\u201d).")
        self.add_error(None, exc.detail)

    def _add_service_errors(self, exc: ValidationFailed) -> None:
        if not exc.errors:
            self.add_error(None, str(exc.detail))
            return
        for key, messages in exc.errors.items():
            field = None
            if key.startswith("credentials."):
                field = FIELD_PREFIX + key.removeprefix("credentials.")
            elif key in LIMIT_FIELDS:
                field = LIMIT_FIELDS[key]
            elif key in {"name", "metadata"}:
                field = key
            if field in self.fields:
                for message in messages:
                    self.add_error(field, message)
            else:
                for message in messages:
                    self.add_error(None, f"{key}: {message}")

    def save(self, commit: bool = True) -> Connection:
        # The service already saved during clean(); there is nothing left to write.
        return self.instance

    def save_m2m(self) -> None:
        return None


def connection_form_class(ctype: ConnectionType, *, connection: Connection | None,
                          request: HttpRequest | None) -> type[ConnectionForm]:
    """The admin form for one connection type: add (connection None) or change."""
    add = connection is None
    attrs: dict[str, Any] = {"connection_type_spec": ctype, "request": request, "__module__": __name__}
    if add:
        attrs["name"] = forms.CharField(max_length=128, help_text="letters, digits, '.', '_' and '-'; "
                                        "cannot change later")
        attrs["connection_type"] = forms.CharField(disabled=True, initial=ctype.name, required=False,
                                                   label="connection type", help_text=ctype.description)
    else:
        attrs["webhook_url"] = forms.CharField(
            disabled=True, required=False, label="webhook URL",
            initial=webhook_url(connection.name, request) or "(set SYNTHORG_PUBLIC_URL or start the tunnel)",
            help_text="where senders post deliveries (read-only)", widget=forms.TextInput(attrs={"size": 80}))
    set_secrets = set(connection.secret_fields) if connection else set()
    destinations = ", ".join(ctype.destination_fields or ()) if set_secrets else ""
    for spec in ctype.fields:
        attrs[FIELD_PREFIX + spec.name] = _spec_field(
            spec, add=add, is_set=spec.name in set_secrets,
            destinations=destinations if spec.secret or spec.name in (ctype.destination_fields or ()) else "")
        if spec.secret and not add:
            attrs[CLEAR_PREFIX + spec.name] = forms.BooleanField(
                required=False, label=f"clear {spec.name}", help_text=f"remove the stored {spec.name}")
    return type(f"{ctype.name.title().replace('_', '')}ConnectionForm", (ConnectionForm,), attrs)


def type_field_names(ctype: ConnectionType, *, add: bool) -> list[str]:
    names: list[str] = []
    for spec in ctype.fields:
        names.append(FIELD_PREFIX + spec.name)
        if spec.secret and not add:
            names.append(CLEAR_PREFIX + spec.name)
    return names
