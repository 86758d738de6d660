"""The connection change page's controls: copy the webhook URL, Check now, Reveal (audited, shown once)."""
from __future__ import annotations

from collections.abc import Callable

import pytest
from django.urls import reverse

from integrations.models import Connection
from synthorg.models import AuditEvent
from tests.admin_console.conftest import CANARY_SIGNING, CANARY_TOKEN, ConsoleClient

pytestmark = pytest.mark.django_db


def change_url(connection: Connection) -> str:
    return reverse("admin:integrations_connection_change", args=[connection.pk])


def reveal_url(connection: Connection) -> str:
    return reverse("admin:integrations_connection_reveal", args=[connection.pk])


def test_change_page_has_copy_check_and_reveal_buttons_but_no_secret(root_console: ConsoleClient,
                                                                    github: Connection) -> None:
    html = root_console.get(change_url(github)).content.decode()

    assert f'data-copy="http://testserver/api/v1/webhooks/{github.name}/auto"' in html
    assert f'formaction="{reverse("admin:integrations_connection_check", args=[github.pk])}"' in html
    assert 'id="reveal-token"' in html and 'id="reveal-signing_secret"' in html
    assert CANARY_TOKEN not in html and CANARY_SIGNING not in html


def test_reveal_buttons_need_the_reveal_permission(console: Callable[..., ConsoleClient],
                                                   github: Connection) -> None:
    viewer = console("integrations.view_connection")

    html = viewer.get(change_url(github)).content.decode()

    assert "reveal-secret" not in html
    assert "integrations.reveal_secret" in html


def test_only_set_secret_fields_get_a_reveal_button(root_console: ConsoleClient) -> None:
    from integrations import services

    connection = services.connection_create(name="gh-token-only", connection_type="github",
                                            credentials={"token": CANARY_TOKEN})

    html = root_console.get(change_url(connection)).content.decode()

    assert 'id="reveal-token"' in html and 'id="reveal-signing_secret"' not in html


def test_revealed_value_page_is_not_stored_and_the_change_page_stays_clean(root_console: ConsoleClient,
                                                                          github: Connection) -> None:
    response = root_console.post(reveal_url(github), {"reveal_field": "signing_secret"})
    after = root_console.get(change_url(github)).content.decode()

    assert response.status_code == 200
    assert CANARY_SIGNING in response.content.decode() and CANARY_TOKEN not in response.content.decode()
    assert "no-store" in response["Cache-Control"]
    assert response["Referrer-Policy"] == "no-referrer"
    assert CANARY_SIGNING not in after


def test_reveal_of_a_field_that_is_not_secret_is_refused_and_audited(root_console: ConsoleClient,
                                                                     github: Connection) -> None:
    response = root_console.post(reveal_url(github), {"reveal_field": "api_url"})

    assert response.status_code == 403
    assert AuditEvent.objects.filter(action="secret.reveal", outcome="failure",
                                     reason="not_a_secret_field").exists()


def test_refused_reveal_is_audited_as_denied(console: Callable[..., ConsoleClient], github: Connection) -> None:
    response = console("integrations.view_connection").post(reveal_url(github), {"reveal_field": "token"})

    assert response.status_code == 403
    assert CANARY_TOKEN not in response.content.decode()
    assert AuditEvent.objects.filter(action="secret.reveal", outcome="denied", reason="permission").exists()


def test_reveal_rate_limit_answers_429(root_console: ConsoleClient, github: Connection, settings: object) -> None:
    settings.SYNTHORG_CONFIG_OVERRIDES = {"connections": {"reveal_rate_per_minute": 1}}  # type: ignore[attr-defined]

    first = root_console.post(reveal_url(github), {"reveal_field": "token"})
    second = root_console.post(reveal_url(github), {"reveal_field": "token"})

    assert first.status_code == 200
    assert second.status_code == 429
    assert CANARY_TOKEN not in second.content.decode()


def test_check_now_reports_the_result(root_console: ConsoleClient) -> None:
    from integrations import services

    connection = services.connection_create(name="http-down", connection_type="generic_http",
                                            credentials={"base_url": "http://127.0.0.1:9/"})

    page = root_console.post(reverse("admin:integrations_connection_check", args=[connection.pk]), follow=True)

    html = page.content.decode()
    assert "http-down: " in html.lower()
    assert 'class="health-badge health-' in html
    assert Connection.objects.get(pk=connection.pk).health_checked_at is not None


def test_controls_of_an_unknown_connection_are_404(root_console: ConsoleClient) -> None:
    assert root_console.post(reverse("admin:integrations_connection_check", args=[987654])).status_code == 404
    assert root_console.post(reverse("admin:integrations_connection_reveal", args=["nope"]),
                             {"reveal_field": "token"}).status_code == 404
