"""Graceful restarts: the timeouts that must agree, in one place (issue 15 §3).

Read by deploy/gunicorn.conf.py (before Django exists, so no Django import here), by settings.py
(the broker's visibility timeout) and checked by tests/fleet/test_shutdown_timeouts.py against
docker-compose.yml and the longest countdowns the code schedules.

* ``GRACEFUL_SECONDS`` (``SYNTHORG_GRACEFUL_SECONDS``, default 25): gunicorn's graceful_timeout,
  how long requests in flight get after SIGTERM.
* ``STOP_GRACE_SECONDS``: what the orchestrator must wait before SIGKILL (docker-compose's
  ``stop_grace_period`` of web, worker and beat): the graceful time plus 5 s. A Celery worker's
  warm shutdown (SIGTERM) finishes the tasks it runs; one still running at SIGKILL is not lost
  (acks_late + reject_on_worker_lost: the broker hands it out again).
* ``VISIBILITY_TIMEOUT_SECONDS`` (``SYNTHORG_BROKER_VISIBILITY_TIMEOUT``, default 3600): with
  Redis as the broker, an unacknowledged message comes back after this long; it must exceed the
  longest countdown (``MAX_COUNTDOWN_SECONDS``) plus the graceful time, or a delayed task would
  be delivered twice.
"""
from __future__ import annotations

import os


def _int(name: str, default: int, low: int, high: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SystemExit(f"synthorg: configuration error: {name}={raw!r} is not an integer") from None
    if not low <= value <= high:
        raise SystemExit(f"synthorg: configuration error: {name}={value} is outside {low}-{high}")
    return value


GRACEFUL_SECONDS = _int("SYNTHORG_GRACEFUL_SECONDS", 25, 1, 3600)
STOP_GRACE_SECONDS = GRACEFUL_SECONDS + 5
# The longest countdown any task is scheduled with (webhooks and notifications retry countdowns).
MAX_COUNTDOWN_SECONDS = 600
VISIBILITY_TIMEOUT_SECONDS = _int("SYNTHORG_BROKER_VISIBILITY_TIMEOUT", 3600,
                                  MAX_COUNTDOWN_SECONDS + GRACEFUL_SECONDS + 1, 86_400)
