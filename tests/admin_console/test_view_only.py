"""A view-only operator sees the connection page with its real values (issue 12: the type's
fields and the webhook URL rendered as "None"), and no control they may not use."""
from __future__ import annotations

import re
import uuid
from collections.abc import Callable

import pytest
from django.urls import reverse

from integrations import services
from integrations.models import Connection
from tests.admin_console.conftest import CANARY_SIGNING, CANARY_TOKEN, ConsoleClient
from webhooks.models import WorkflowRun

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


@pytest.fixture
def failed_run(db: None) -> WorkflowRun:
    return WorkflowRun.objects.create(rule_name="view-rule", workflow="noop", event_id=uuid.uuid4(),
                                      status=WorkflowRun.Status.FAILED, attempts=3, error="boom")


def test_retry_is_not_shown_without_the_retry_permission(console: Callable[..., ConsoleClient],
                                                         failed_run: WorkflowRun) -> None:
    viewer = console("webhooks.view_workflowrun")

    page = viewer.get(reverse("admin:webhooks_workflowrun_change", args=[failed_run.pk]))
    listing = viewer.get(reverse("admin:webhooks_workflowrun_changelist")).content.decode()

    assert page.status_code == 200
    assert 'id="retry-run"' not in page.content.decode()
    assert 'value="retry_selected"' not in listing


def test_retry_is_shown_to_its_holder(console: Callable[..., ConsoleClient], failed_run: WorkflowRun) -> None:
    retrier = console("webhooks.view_workflowrun", "webhooks.change_workflowrun")

    page = retrier.get(reverse("admin:webhooks_workflowrun_change", args=[failed_run.pk])).content.decode()
    listing = retrier.get(reverse("admin:webhooks_workflowrun_changelist")).content.decode()

    assert 'id="retry-run"' in page
    assert 'value="retry_selected"' in listing


def test_staff_without_permissions_sees_no_page(console: Callable[..., ConsoleClient], enterprise: Connection,
                                                failed_run: WorkflowRun) -> None:
    staff = console()

    for url in (reverse("admin:integrations_connection_change", args=[enterprise.pk]),
                reverse("admin:webhooks_workflowrun_change", args=[failed_run.pk]),
                reverse("admin:integrations_tunnelstate_changelist")):
        assert staff.get(url).status_code == 403, url
