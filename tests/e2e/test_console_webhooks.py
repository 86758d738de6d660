"""Journey 4: add a trigger rule in the admin, send a signed GitHub webhook to the live receiver,
then find the delivery in the activity log and the workflow run it fired."""
from __future__ import annotations

import json
import threading
from typing import Any

import pytest
import requests

from integrations import services as connection_services
from tests.e2e.console import Console, console_fixture  # noqa: F401  (fixture `console`)
from webhooks.models import Delivery, WorkflowRun
from webhooks.verifiers.github import sign_github

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]

# Celery is eager in tests, so the run exists when the receiver answers; the poll only
# bounds the wait should a deployment hand it to a worker instead.
RUN_WAIT_SECONDS = 20.0


def wait_for_run(delivery_id: int) -> WorkflowRun:
    stop = threading.Event()
    for _ in range(int(RUN_WAIT_SECONDS * 10)):
        run = WorkflowRun.objects.filter(delivery_id=delivery_id).first()
        if run is not None and run.status in (WorkflowRun.Status.SUCCEEDED, WorkflowRun.Status.FAILED):
            return run
        stop.wait(0.1)
    pytest.fail(f"no finished workflow run for delivery {delivery_id} within {RUN_WAIT_SECONDS}s")


def test_signed_webhook_shows_in_activity_log_with_the_run_its_rule_fired(console: Console,
                                                                          superuser: Any) -> None:
    signing_secret = console.canary("gh-webhook-secret-canary-41c7d2")
    connection = connection_services.connection_create(
        name="gh-hooks", connection_type="github", actor=superuser,
        credentials={"token": console.canary("ghp_webhookCanary_90af3e"), "signing_secret": signing_secret})
    page = console.page

    # The trigger rule, written through the admin form.
    console.goto("/admin/webhooks/triggerrule/add/")
    page.fill("#id_name", "log-pushes")
    page.fill("#id_connection", str(connection.pk))
    page.fill("#id_event_type", "push")
    page.fill("#id_workflow", "log_event")
    console.shot("console-trigger-rule-add")
    page.click("input[name=_save]")
    page.wait_for_url("**/admin/webhooks/triggerrule/")
    assert page.locator("#result_list tr", has_text="log-pushes").is_visible()

    # "Connection: close": a kept-alive socket would keep the live server's request thread, and
    # its database connection, past the test (the test database could then not be dropped).
    body = json.dumps({"ref": "refs/heads/main", "pusher": {"name": "octocat"}}).encode()
    headers = {"Content-Type": "application/json", "Connection": "close",
               **sign_github(signing_secret.encode(), body, event="push", delivery="journey-delivery-1")}
    answer = requests.post(console.url("/api/v1/webhooks/gh-hooks/auto"), data=body, headers=headers,
                           timeout=(3, 20))
    assert answer.status_code == 202, answer.text
    delivery = Delivery.objects.get(connection_name="gh-hooks")
    run = wait_for_run(delivery.pk)
    assert run.status == WorkflowRun.Status.SUCCEEDED and run.rule_name == "log-pushes"

    # The activity log, filtered to accepted deliveries, then the delivery itself.
    console.goto("/admin/webhooks/delivery/?outcome__exact=accepted")
    row = page.locator("#result_list tr", has_text="gh-hooks")
    assert "push" in row.inner_text()
    console.shot("console-webhook-deliveries")
    row.locator("a").first.click()
    page.wait_for_selector(".field-provider_delivery_id")
    assert "journey-delivery-1" in page.locator(".field-provider_delivery_id").inner_text()
    console.shot("console-webhook-delivery")

    page.locator(".field-workflow_runs a", has_text="1 run(s)").click()
    page.wait_for_url(f"**/admin/webhooks/workflowrun/?delivery__exact={delivery.pk}")
    run_row = page.locator("#result_list tr", has_text="log-pushes")
    assert "succeeded" in run_row.inner_text().lower()
    console.shot("console-workflow-runs")
    run_row.locator("a").first.click()
    page.wait_for_selector(".field-status_badge")  # the worded status badge (issue 13 §6)
    assert "succeeded" in page.locator(".field-status_badge").inner_text().lower()
    console.shot("console-workflow-run")
    assert console.leaks() == []
