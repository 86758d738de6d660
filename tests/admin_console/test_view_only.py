"""A view-only operator sees the connection page with its real values (issue 12: the type's
fields and the webhook URL rendered as "None"), and no control they may not use."""
from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from django.urls import reverse

from integrations import services
from integrations.models import Connection
from tests.admin_console.conftest import CANARY_SIGNING, CANARY_TOKEN, ConsoleClient

pytestmark = pytest.mark.django_db

API_URL = "https://ghe.example.com/api/v3"


@pytest.fixture
def enterprise(db: None) -> Connection:
    return services.connection_create(name="ghe-view", connection_type="github",
                                      credentials={"token": CANARY_TOKEN, "signing_secret": CANARY_SIGNING,
                                                   "api_url": API_URL})


def _readonly_values(html: str) -> list[str]:
    return [v.strip() for v in re.findall(r'<div class="readonly">(.*?)</div>', html, re.S)]


def test_view_only_user_sees_the_real_api_url_and_webhook_url(console: Callable[..., ConsoleClient],
                                                               enterprise: Connection) -> None:
    viewer = console("integrations.view_connection")

    response = viewer.get(reverse("admin:integrations_connection_change", args=[enterprise.pk]))
    html = response.content.decode()
    values = _readonly_values(html)

    assert response.status_code == 200
    assert API_URL in values
    assert f"http://testserver/api/v1/webhooks/{enterprise.name}/auto" in values
    assert "None" not in values
    assert CANARY_TOKEN not in html and CANARY_SIGNING not in html


def test_view_only_user_sees_no_secret_inputs_or_clear_boxes(console: Callable[..., ConsoleClient],
                                                              enterprise: Connection) -> None:
    html = console("integrations.view_connection").get(
        reverse("admin:integrations_connection_change", args=[enterprise.pk])).content.decode()

    assert 'type="password"' not in html
    assert "clear token" not in html


def test_controls_the_user_may_not_use_are_not_shown(console: Callable[..., ConsoleClient],
                                                     enterprise: Connection) -> None:
    html = console("integrations.view_connection").get(
        reverse("admin:integrations_connection_change", args=[enterprise.pk])).content.decode()
    listing = console("integrations.view_connection").get(
        reverse("admin:integrations_connection_changelist")).content.decode()

    assert 'id="check-now"' not in html and 'id="reveal-token"' not in html
    assert "integrations.change_connection" in html  # the note says what Check now needs
    assert 'value="check_now"' not in listing


def test_holder_of_change_sees_check_now(console: Callable[..., ConsoleClient], enterprise: Connection) -> None:
    editor = console("integrations.view_connection", "integrations.change_connection")

    html = editor.get(reverse("admin:integrations_connection_change", args=[enterprise.pk])).content.decode()
    listing = editor.get(reverse("admin:integrations_connection_changelist")).content.decode()

    assert 'id="check-now"' in html
    assert 'value="check_now"' in listing
