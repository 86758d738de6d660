"""Fixtures for the operator console: logged-in browsers-without-a-browser that enforce CSRF."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.middleware.csrf import _get_new_csrf_string
from django.test import Client

from integrations import services as connection_services
from integrations.models import Connection
from tests.permissions import grant

# Values that must never appear in a page's HTML.
CANARY_TOKEN = "ghp_CANARY_console_0123456789abcdef"
CANARY_SIGNING = "whsec_CANARY_console_signing_0123"


class ConsoleClient(Client):
    """A Django test client that checks CSRF like a real browser session does.

    `post()` sends the CSRF token (cookie and form field); `post_without_token()` does not.
    """

    def __init__(self) -> None:
        super().__init__(enforce_csrf_checks=True)
        self.csrf_token = _get_new_csrf_string()
        self.cookies["csrftoken"] = self.csrf_token

    def post(self, path: str, data: dict[str, Any] | None = None, **extra: Any) -> Any:  # type: ignore[override]
        return super().post(path, {**(data or {}), "csrfmiddlewaretoken": self.csrf_token}, **extra)

    def post_without_token(self, path: str, data: dict[str, Any] | None = None, **extra: Any) -> Any:
        return super().post(path, data or {}, **extra)


@pytest.fixture
def console(django_user_model: Any) -> Callable[..., ConsoleClient]:
    """`console("app.perm", ...)`: a staff user holding exactly those permissions, logged in."""
    count = [0]

    def make(*perms: str, superuser: bool = False) -> ConsoleClient:
        count[0] += 1
        user = django_user_model.objects.create_user(username=f"op{count[0]}", password="pw-op-123456",
                                                     is_staff=True, is_superuser=superuser)
        user = grant(user, *perms)
        client = ConsoleClient()
        client.force_login(user)
        client.user = user  # type: ignore[attr-defined]
        return client

    return make


@pytest.fixture
def root_console(console: Callable[..., ConsoleClient]) -> ConsoleClient:
    return console(superuser=True)


@pytest.fixture
def github(db: Any) -> Connection:
    return connection_services.connection_create(
        name="gh-console", connection_type="github",
        credentials={"token": CANARY_TOKEN, "signing_secret": CANARY_SIGNING})
