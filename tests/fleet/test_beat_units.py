"""Beat leadership in-process: the takeover bound is validated, and even two schedulers that both
believe they lead (a lost session a moment before sending) fire one interval once."""
from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from synthorg.beat import LeaderScheduler, SingleElector
from synthorg.celery import app
from synthorg.config import ConfigInvalid, load


@pytest.mark.parametrize("value", [2, 601, "soon"])
def test_takeover_seconds_is_bounded(value: Any) -> None:
    with pytest.raises(ConfigInvalid) as caught:
        load(None, environ={}, overrides={"beat": {"takeover_seconds": value}})
    assert [p.path for p in caught.value.problems] == ["integrations.beat.takeover_seconds"]
    assert load(None, environ={}).integrations.beat.takeover_seconds == 30


class Recording(LeaderScheduler):
    sent: list[str]

    def apply_async(self, entry: Any, producer: Any = None, advance: bool = True, **kwargs: Any) -> None:
        self.sent.append(entry.name)


@pytest.mark.django_db(transaction=True)
def test_two_schedulers_that_both_lead_send_a_due_task_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("synthorg.beat.uses_lock", lambda: False)  # both "lead"
    monkeypatch.setattr(app.conf, "beat_schedule", {})
    first, second = Recording(app=app, lazy=True), Recording(app=app, lazy=True)
    first.setup_schedule()
    # The heartbeat is overdue, and both schedulers read that same row.
    PeriodicTask.objects.filter(name="synthorg:heartbeat").update(last_run_at=timezone.now() - timedelta(hours=1))
    for scheduler in (first, second):
        assert isinstance(scheduler.elector, SingleElector)
        scheduler.sent = []
        scheduler._reload()
        assert scheduler.schedule["synthorg:heartbeat"].is_due().is_due
    for _ in range(3):
        first.tick()
        second.tick()
    assert first.sent.count("synthorg:heartbeat") == 1
    assert second.sent.count("synthorg:heartbeat") == 0
    row = PeriodicTask.objects.get(name="synthorg:heartbeat")
    assert timezone.now() - row.last_run_at < timedelta(seconds=30)
