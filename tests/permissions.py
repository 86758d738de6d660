"""Granting Django permissions in tests: `grant(user, "app.codename", ...)` and the operator role.

The operator role is what a staff user could do through the API before issue 12 (every model
permission of the service's apps and its action permissions), except revealing secrets and
reading webhook payloads, which always needed their own permission. Tests that exercise an
endpoint for its behaviour, not its permission, use a client holding it (`operator_client`);
tests about permissions grant exactly what they mean (`perm_client`, `console`). The reader
role (the `user` fixture) holds the view permissions only.
"""
from __future__ import annotations

from typing import Any

from django.contrib.auth.models import Permission

SERVICE_APPS = ("synthorg", "integrations", "oauthflow", "webhooks", "catalog", "providers", "notifications")
NOT_FOR_OPERATORS = {"integrations.reveal_secret", "webhooks.view_delivery_payload"}
# The audit log was staff-only before issue 12; it is not part of reading.
NOT_FOR_READERS = NOT_FOR_OPERATORS | {"synthorg.view_auditevent"}


def grant(user: Any, *perms: str) -> Any:
    """Add the permissions ("app_label.codename") and return the user fetched again
    (Django caches permissions on the instance)."""
    for perm in perms:
        app_label, codename = perm.split(".")
        user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    return type(user).objects.get(pk=user.pk)


def reader_permissions() -> list[str]:
    """The view_* permissions of the service's apps: what any logged-in user could read before issue 12."""
    rows = Permission.objects.filter(content_type__app_label__in=SERVICE_APPS, codename__startswith="view_")
    return sorted(f"{app}.{codename}" for app, codename in rows.values_list("content_type__app_label", "codename")
                  if f"{app}.{codename}" not in NOT_FOR_READERS)


def operator_permissions() -> list[str]:
    rows = Permission.objects.filter(content_type__app_label__in=SERVICE_APPS).values_list(
        "content_type__app_label", "codename")
    return sorted(f"{app}.{codename}" for app, codename in rows if f"{app}.{codename}" not in NOT_FOR_OPERATORS)
