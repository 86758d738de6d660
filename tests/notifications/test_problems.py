"""Problems from health transitions: one alert on open, one on resolve, none while flapping below
the smoothing threshold, reminders only when asked, acknowledged problems stay quiet, a deleted
connection resolves its problem."""
from __future__ import annotations

from datetime import timedelta

import pytest

from integrations import services as connections
from integrations.health import health_record
from integrations.types.probing import HealthResult
from notifications import services
from notifications.models import Alert, AlertRule, Problem
from tests.notifications.conftest import T0, healthy, only_rule, unhealthy

pytestmark = pytest.mark.django_db(transaction=False)


@pytest.fixture
def sink(http_peer):
    conn = connections.connection_create(name="receiver", connection_type="generic_http",
                                         credentials={"base_url": http_peer.url("/hook")})
    return services.sink_create(name="hook", kind="webhook", connection=conn.name).sink


@pytest.fixture
def watched():
    return connections.connection_create(name="watched", connection_type="generic_http",
                                         credentials={"base_url": "http://127.0.0.1:9/x"})


def test_default_rules_exist_and_record_problems_without_sinks(watched) -> None:
    assert AlertRule.objects.filter(name="Connections unhealthy", enabled=True).exists()
    unhealthy(watched)
    problem = Problem.objects.get(event="connection.unhealthy")
    assert problem.state == "open" and problem.connection_name == "watched"
    assert not Alert.objects.exists()  # nothing to send to until a sink exists


def test_unhealthy_opens_once_and_recovery_resolves_once(sink, watched) -> None:
    unhealthy(watched)
    for _ in range(5):  # still unhealthy: no new problem, no new alert
        health_record(connection_id=watched.pk, result=HealthResult("unhealthy", "refused", 5, T0))
    assert list(Alert.objects.values_list("kind", flat=True)) == ["opened"]
    healthy(watched)
    problem = Problem.objects.get()
    assert problem.state == "resolved" and problem.resolved_at is not None
    assert sorted(Alert.objects.values_list("kind", flat=True)) == ["opened", "resolved"]
    assert [h["what"] for h in problem.history] == ["opened", "resolved"]


def test_flapping_below_the_threshold_sends_nothing(sink, watched) -> None:
    for _ in range(10):
        health_record(connection_id=watched.pk, result=HealthResult("unhealthy", "refused", 5, T0))
        health_record(connection_id=watched.pk, result=HealthResult("healthy", "ok", 5, T0))
    assert not Problem.objects.exists() and not Alert.objects.exists()


def test_reopening_after_resolve_is_a_new_problem(sink, watched) -> None:
    unhealthy(watched)
    healthy(watched)
    unhealthy(watched)
    assert Problem.objects.count() == 2
    assert Problem.objects.filter(state="open").count() == 1


def test_the_transition_and_its_alert_roll_back_together(sink, watched) -> None:
    from django.db import transaction

    with pytest.raises(RuntimeError), transaction.atomic():
        unhealthy(watched)
        assert Alert.objects.count() == 1
        raise RuntimeError("the caller's transaction fails")
    assert not Alert.objects.exists() and not Problem.objects.exists()


def test_reminders_only_at_the_interval_and_stop_when_acknowledged(sink, watched) -> None:
    AlertRule.objects.filter(name="Connections unhealthy").update(reminder_interval_seconds=3600)
    unhealthy(watched)
    problem = Problem.objects.get()
    Problem.objects.filter(pk=problem.pk).update(opened_at=T0)
    services.problems_evaluate(now=T0 + timedelta(minutes=59))
    assert Alert.objects.filter(kind="reminder").count() == 0
    services.problems_evaluate(now=T0 + timedelta(minutes=61))
    assert Alert.objects.filter(kind="reminder").count() == 1
    services.problems_evaluate(now=T0 + timedelta(minutes=62))  # not again before the next interval
    assert Alert.objects.filter(kind="reminder").count() == 1
    services.problem_acknowledge(problem_id=problem.pk, actor="ops")
    services.problems_evaluate(now=T0 + timedelta(hours=5))
    assert Alert.objects.filter(kind="reminder").count() == 1
    assert Alert.objects.get(kind="reminder").status == "failed"  # the queued one was dropped too


def test_no_reminders_by_default(sink, watched) -> None:
    unhealthy(watched)
    services.problems_evaluate(now=T0 + timedelta(days=3))
    assert not Alert.objects.filter(kind="reminder").exists()


def test_deleting_the_connection_resolves_its_problem(sink, watched) -> None:
    unhealthy(watched)
    connections.connection_delete(name="watched")  # resolved in the delete's transaction
    problem = Problem.objects.get()
    assert problem.state == "resolved" and problem.history[-1]["reason"] == "connection deleted"
    assert Alert.objects.filter(kind="resolved").count() == 1


def test_rule_connection_type_filter(sink, watched) -> None:
    only_rule(["connection.unhealthy"], connection_types=["smtp"])
    unhealthy(watched)
    assert not Problem.objects.exists()


def test_a_problem_whose_connection_vanished_otherwise_is_resolved_by_the_evaluation(sink, watched) -> None:
    from integrations.models import Connection

    unhealthy(watched)
    Connection.objects.filter(pk=watched.pk).delete()  # not through the service (a raw delete)
    report = services.problems_evaluate(now=T0 + timedelta(minutes=1))
    assert report.orphans_resolved == 1
    assert Problem.objects.get().state == "resolved"
    assert Alert.objects.filter(kind="resolved").count() == 1
