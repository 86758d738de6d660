"""The console pages of the README, in Chromium, as a view-only operator and as the superuser
(issue 13 §6). Each page is checked for what the issue asked and photographed at 1280x800.

The pictures go to tests/screenshots/ (git-ignored); with SYNTHORG_UPDATE_SCREENSHOTS=1 they
replace the README's, in docs/screenshots/:

    SYNTHORG_UPDATE_SCREENSHOTS=1 .venv/bin/python -m pytest tests/e2e/test_console_screenshots.py
"""
from __future__ import annotations

import os
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.utils import timezone

from integrations import services as connection_services
from oauthflow.models import GrantType, OAuthToken
from tests.e2e.browser import SCREENSHOTS, admin_login
from tests.e2e.console import ADMIN_PASSWORD, ADMIN_USERNAME
from webhooks.models import WorkflowRun

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True), pytest.mark.timeout(180)]

DOCS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
VIEW_ONLY = ("integrations.view_connection", "integrations.view_tunnelstate", "catalog.view_installation",
             "oauthflow.view_oauthtoken", "webhooks.view_workflowrun", "webhooks.view_delivery",
             "webhooks.view_triggerrule", "synthorg.view_auditevent")


def _shot(page: Any, name: str) -> Path:
    target = DOCS if os.environ.get("SYNTHORG_UPDATE_SCREENSHOTS") == "1" else SCREENSHOTS
    target.mkdir(parents=True, exist_ok=True)
    path = target / f"{name}.png"
    page.screenshot(path=str(path))  # the viewport only: 1280x800 keeps each file small
    return path


@pytest.fixture
def data(db: Any) -> None:
    connection_services.connection_create(name="gh-ops", connection_type="generic_http",
                                          credentials={"base_url": "http://127.0.0.1:9/", "token": "t" * 24})
    connection_services.connection_create(name="github-main", connection_type="github",
                                          credentials={"token": "g" * 24, "signing_secret": "s" * 24})
    idp = connection_services.connection_create(
        name="idp", connection_type="oauth_app", credentials={
            "client_id": "console", "client_secret": "console-secret-0123", "auth_url": "https://idp.example/auth",
            "token_url": "https://idp.example/token"})
    expiring = connection_services.connection_create(
        name="idp-short", connection_type="oauth_app",
        credentials={"client_id": "c", "client_secret": "s-console-0123", "token_url": "https://idp.example/token"})
    now = timezone.now()
    OAuthToken.objects.create(connection=idp, grant_type=GrantType.AUTHORIZATION_CODE, ciphertext="x", key_id="k",
                              obtained_at=now, has_refresh_token=True, expires_at=now + timedelta(hours=1))
    OAuthToken.objects.create(connection=expiring, grant_type=GrantType.AUTHORIZATION_CODE, ciphertext="x",
                              key_id="k", obtained_at=now, has_refresh_token=False,
                              expires_at=now + timedelta(hours=3))
    WorkflowRun.objects.create(rule_name="forward-pushes", workflow="log_event", event_id=uuid.uuid4(),
                               connection_name="github-main", event_type="push",
                               status=WorkflowRun.Status.FAILED, attempts=3, error="TransientError: upstream 503")


def test_console_pages_as_the_operator_sees_them(page: Any, live_server: Any, superuser: Any,
                                                 django_user_model: Any, data: None,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    # The tests' Celery is eager: a retried run would run inside the request. In a deployment
    # a worker takes it a moment later; until then the operator sees it queued, as here.
    queued: list[int] = []
    monkeypatch.setattr("webhooks.tasks.workflow_run_enqueue", lambda run_id: queued.append(run_id) or True)
    base = live_server.url
    viewer = django_user_model.objects.create_user("viewer", password="pw-viewer-123", is_staff=True)
    for perm in VIEW_ONLY:
        app_label, codename = perm.split(".")
        viewer.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    page.set_viewport_size({"width": 1280, "height": 800})
    violations: list[str] = []  # every page here also runs under the Content-Security-Policy
    page.on("console", lambda message: "Content Security Policy" in message.text and violations.append(message.text))

    # A view-only operator: the dashboard with its cards, the catalog in the sidebar.
    admin_login(page, base, "viewer", "pw-viewer-123")
    page.wait_for_selector(".synthorg-dashboard")
    assert page.locator("#content-main .model-catalogpage a", has_text="MCP server catalog").count() == 1
    assert page.locator(".synthorg-card h2", has_text="MCP server catalog").count() == 1
    _shot(page, "console-dashboard")

    page.goto(f"{base}/admin/integrations/")
    assert page.locator(".synthorg-dashboard").count() == 0  # cards on the dashboard only
    assert page.locator("#content-main a", has_text="Tunnel").count() >= 1
    _shot(page, "console-app-index")

    page.goto(f"{base}/admin/integrations/tunnelstate/")
    assert page.locator("#tunnel-start").count() == 0  # disabled: nothing to start
    _shot(page, "console-tunnel")

    page.locator("#nav-sidebar a", has_text="MCP server catalog").click()  # the catalog's own sidebar entry
    page.wait_for_selector("h1:has-text('MCP server catalog')")
    _shot(page, "console-catalog")

    page.goto(f"{base}/admin/oauthflow/oauthtoken/")
    words = sorted(page.locator(".oauth-badge").all_inner_texts())
    assert words == ["connected", "expiring"]
    _shot(page, "console-oauth-tokens")
    page.context.clear_cookies()

    # The superuser: a message that keeps the name, the Connect page, a retried run.
    admin_login(page, base, ADMIN_USERNAME, ADMIN_PASSWORD)
    page.goto(f"{base}/admin/integrations/connection/")
    page.locator("#result_list tr", has_text="gh-ops").locator("input[name=_selected_action]").check()
    page.select_option("select[name=action]", "check_now")
    page.click("button[name=index]")
    message = page.locator(".messagelist li").first.inner_text()
    assert message.startswith("gh-ops: ")
    _shot(page, "console-connections-message")

    page.goto(f"{base}/admin/oauthflow/oauthtoken/connect/idp/")
    assert page.locator("#oauth-status").inner_text() == "connected"
    _shot(page, "console-oauth-connect")

    page.goto(f"{base}/admin/webhooks/workflowrun/")
    row = page.locator("#result_list tr", has_text="forward-pushes")
    row.locator("input[name=_selected_action]").check()
    page.select_option("select[name=action]", "retry_selected")
    page.click("button[name=index]")
    page.wait_for_selector(".messagelist")
    row = page.locator("#result_list tr", has_text="forward-pushes")
    assert row.locator(".run-status").inner_text() == "queued"
    assert len(queued) == 1
    _shot(page, "console-runs-after-retry")

    assert violations == []
    for name in ("console-dashboard", "console-catalog", "console-runs-after-retry"):
        target = DOCS if os.environ.get("SYNTHORG_UPDATE_SCREENSHOTS") == "1" else SCREENSHOTS
        assert (target / f"{name}.png").stat().st_size < 150_000
