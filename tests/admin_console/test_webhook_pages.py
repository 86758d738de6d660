"""Webhooks in the console: activity log filters, payload permission, rules through the services,
workflow runs with their errors and the retry action."""
from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.urls import reverse
from django.utils import timezone

from integrations.models import Connection
from synthorg.models import AuditEvent
from tests.admin_console.conftest import ConsoleClient
from webhooks import services
from webhooks.models import Delivery, TriggerRule, WorkflowRun

pytestmark = pytest.mark.django_db

PAYLOAD_CANARY = "payload-CANARY-console-0001"
DELIVERIES = reverse("admin:webhooks_delivery_changelist")
RULES_ADD = reverse("admin:webhooks_triggerrule_add")
RUNS = reverse("admin:webhooks_workflowrun_changelist")


def delivery(connection: Connection, *, event_type: str = "push", minutes_ago: int = 1,
             outcome: str = Delivery.Outcome.ACCEPTED) -> Delivery:
    return Delivery.objects.create(
        connection=connection, connection_name=connection.name, connection_type=connection.connection_type,
        event_type=event_type, path_event_type="auto", replay_key=uuid.uuid4().hex, body=b"{}",
        payload={"secret_note": PAYLOAD_CANARY}, outcome=outcome,
        received_at=timezone.now() - timedelta(minutes=minutes_ago))


def failed_run(**fields: Any) -> WorkflowRun:
    return WorkflowRun.objects.create(rule_name="console-rule", workflow="log_event", event_id=uuid.uuid4(),
                                      status=WorkflowRun.Status.FAILED, attempts=3,
                                      error="TransientError: upstream 503", **fields)


def test_payload_is_shown_only_with_the_permission(console: Callable[..., ConsoleClient],
                                                   github: Connection) -> None:
    item = delivery(github)
    url = reverse("admin:webhooks_delivery_change", args=[item.pk])
    viewer = console("webhooks.view_delivery")
    reader = console("webhooks.view_delivery", "webhooks.view_delivery_payload")

    withheld = viewer.get(url).content.decode()
    shown = reader.get(url).content.decode()

    assert PAYLOAD_CANARY not in withheld
    assert "webhooks.view_delivery_payload" in withheld
    assert PAYLOAD_CANARY in shown


def test_payload_cannot_be_probed_through_changelist_lookups(console: Callable[..., ConsoleClient],
                                                              github: Connection) -> None:
    # Django's admin accepts any ?<local field>__<lookup>= on its changelist: without this rule a
    # user lacking view_delivery_payload learned payload contents by which rows matched.
    delivery(github)
    viewer = console("webhooks.view_delivery")
    reader = console("webhooks.view_delivery", "webhooks.view_delivery_payload")

    for probe in ({"payload__secret_note": PAYLOAD_CANARY}, {"payload__icontains": "CANARY"},
                  {"body__exact": "{}"}):
        assert viewer.get(DELIVERIES, probe).status_code == 400, probe
    assert reader.get(DELIVERIES, {"payload__secret_note": PAYLOAD_CANARY}).context["cl"].result_count == 1


def test_activity_log_filters_by_outcome_and_by_the_last_hour(root_console: ConsoleClient,
                                                              github: Connection) -> None:
    delivery(github, event_type="recent.accepted")
    delivery(github, event_type="recent.unverified", outcome=Delivery.Outcome.ACCEPTED_UNVERIFIED)
    delivery(github, event_type="old.accepted", minutes_ago=180)

    by_outcome = root_console.get(DELIVERIES, {"outcome__exact": "accepted_unverified"}).content.decode()
    last_hour = root_console.get(DELIVERIES, {"received": "1h"}).content.decode()

    assert "recent.unverified" in by_outcome and "recent.accepted" not in by_outcome
    assert "recent.accepted" in last_hour and "old.accepted" not in last_hour


def test_delivery_links_to_its_workflow_runs(root_console: ConsoleClient, github: Connection) -> None:
    item = delivery(github)
    failed_run(delivery=item)
    other = failed_run()

    detail = root_console.get(reverse("admin:webhooks_delivery_change", args=[item.pk])).content.decode()
    runs = root_console.get(RUNS, {"delivery__exact": item.pk}).content.decode()

    assert f"?delivery__exact={item.pk}" in detail and "1 run(s)" in detail
    assert reverse("admin:webhooks_workflowrun_change", args=[other.pk]) not in runs


def test_rule_written_in_the_admin_goes_through_the_services(root_console: ConsoleClient,
                                                            github: Connection) -> None:
    form = {"name": "console-rule", "enabled": "on", "connection": str(github.pk), "event_type": "push",
            "conditions": "[]", "workflow": "log_event", "parameters": "{}"}

    created = root_console.post(RULES_ADD, form)
    rule = TriggerRule.objects.get(name="console-rule")
    changed = root_console.post(reverse("admin:webhooks_triggerrule_change", args=[rule.pk]),
                                {**form, "event_type": "pull_request.*"})
    deleted = root_console.post(reverse("admin:webhooks_triggerrule_delete", args=[rule.pk]), {"post": "yes"})

    assert [r.status_code for r in (created, changed, deleted)] == [302, 302, 302]
    actions = list(AuditEvent.objects.filter(target_type="trigger_rule").order_by("id")
                   .values_list("action", flat=True))
    assert actions == ["trigger_rule.create", "trigger_rule.update", "trigger_rule.delete"]
    assert not TriggerRule.objects.exists()


def test_invalid_rule_is_refused_with_the_reason(root_console: ConsoleClient) -> None:
    form = {"name": "bad-rule", "enabled": "on", "event_type": "push", "conditions": '[{"nope": 1}]',
            "workflow": "log_event", "parameters": "{}"}

    response = root_console.post(RULES_ADD, form)

    assert response.status_code == 200
    assert "unknown keys" in response.content.decode()
    assert not TriggerRule.objects.exists()


def test_run_page_shows_the_error_and_a_retry_button(root_console: ConsoleClient) -> None:
    run = failed_run()

    listing = root_console.get(RUNS, {"status__exact": "failed"}).content.decode()
    detail = root_console.get(reverse("admin:webhooks_workflowrun_change", args=[run.pk])).content.decode()

    assert "TransientError: upstream 503" in listing
    assert 'id="retry-run"' in detail
    assert reverse("admin:webhooks_workflowrun_retry", args=[run.pk]) in detail
    assert "csrfmiddlewaretoken" in detail  # the button posts the page's form, token included


def test_succeeded_run_cannot_be_retried(root_console: ConsoleClient) -> None:
    run = failed_run()
    WorkflowRun.objects.filter(pk=run.pk).update(status=WorkflowRun.Status.SUCCEEDED)

    page = root_console.post(reverse("admin:webhooks_workflowrun_retry", args=[run.pk]), follow=True)

    assert "only failed runs can be retried" in page.content.decode()
    assert WorkflowRun.objects.get(pk=run.pk).status == WorkflowRun.Status.SUCCEEDED


def test_retry_action_requeues_the_selected_failed_runs(root_console: ConsoleClient) -> None:
    runs = [failed_run(), failed_run()]

    root_console.post(RUNS, {"action": "retry_selected", "_selected_action": [str(r.pk) for r in runs]})

    assert set(WorkflowRun.objects.values_list("status", flat=True)) == {WorkflowRun.Status.PENDING}
    assert AuditEvent.objects.filter(action="workflow_run.retry").count() == 2


def test_retry_action_is_not_offered_without_the_permission(console: Callable[..., ConsoleClient]) -> None:
    failed_run()
    viewer = console("webhooks.view_workflowrun")

    html = viewer.get(RUNS).content.decode()

    assert "retry_selected" not in html


def test_retry_of_an_unknown_run_is_404(root_console: ConsoleClient) -> None:
    assert root_console.post(reverse("admin:webhooks_workflowrun_retry", args=[999999])).status_code == 404


def test_retry_twice_queues_once(root_console: ConsoleClient) -> None:
    run = failed_run()

    services.workflow_run_retry(run_id=run.pk)
    with pytest.raises(services.Conflict):
        services.workflow_run_retry(run_id=run.pk)

    assert AuditEvent.objects.filter(action="workflow_run.retry").count() == 1
