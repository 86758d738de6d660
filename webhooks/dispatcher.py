"""Telling Celery about accepted deliveries, off the request path and in batches.

The receiver commits the delivery (the outbox row) before it answers 202; the Celery message
only makes publication start at once instead of at the next outbox sweep. So the request
does not wait for the broker: it puts the id on this process's queue and returns, and a
daemon thread sends one ``webhooks.delivery_publish_batch`` message per batch: the ids that
arrived within ``LINGER_SECONDS`` of the first (at most ``MAX_BATCH``). Publishing one Celery
message costs about as much CPU as the rest of the receiver's work for a delivery, so under
load one message for many deliveries is most of what keeps the receiver fast; a lone
delivery's publication starts ``LINGER_SECONDS`` later, long after its 202.

Nothing depends on the thread for correctness: ids still queued when a process dies, or whose
message the broker refused, are pending rows that ``webhooks.publication_sweep`` enqueues
(after ``PENDING_GRACE_SECONDS``), and publication is idempotent, so a delivery sent twice
(by the thread and the sweep) is published once.
"""
from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable

from kombu.exceptions import OperationalError

logger = logging.getLogger(__name__)

# A batch is one task: capped so a backlog still spreads over the Celery worker pool.
MAX_BATCH = 100
# How long the thread waits after the first id for others to join its batch.
LINGER_SECONDS = 0.05
# How long a stopping process waits for its queue to be sent (the sweep has the rest).
EXIT_FLUSH_SECONDS = 3.0


class BrokerOutageLog:
    """While the broker refuses messages (Redis down), a warning when it starts, one a minute
    while it lasts and one when it accepts again: a line per batch would be a line per
    request exactly when the log matters (issue 13)."""

    INTERVAL_SECONDS = 60.0

    def __init__(self, *, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._since: float | None = None
        self._logged_at = 0.0
        self._left = 0

    def refused(self, count: int, exc: BaseException) -> None:
        now = self._monotonic()
        with self._lock:
            self._left += count
            if self._since is None:
                self._since, self._logged_at = now, now
                logger.warning("broker unavailable, %d deliveries left to the outbox sweep: %s", count, exc)
                self._left = 0
            elif now - self._logged_at >= self.INTERVAL_SECONDS:
                logger.warning("broker still unavailable: %d more deliveries left to the outbox sweep in %.0f s: %s",
                               self._left, now - self._logged_at, exc)
                self._logged_at, self._left = now, 0

    def accepted(self) -> None:
        if self._since is None:
            return
        with self._lock:
            if self._since is not None:
                logger.warning("broker available again after %.0f s", self._monotonic() - self._since)
                self._since, self._left = None, 0


broker_outage_log = BrokerOutageLog()


def send_batch(delivery_ids: list[int]) -> bool:
    """One Celery message for these deliveries; False when the broker refused it."""
    from webhooks.tasks import delivery_publish_batch_task

    try:
        # retry=False: a dead broker must not stall the queue in kombu's retry loop.
        delivery_publish_batch_task.apply_async((delivery_ids,), retry=False)
    except (OperationalError, OSError) as exc:
        broker_outage_log.refused(len(delivery_ids), exc)
        return False
    broker_outage_log.accepted()
    return True


class PublicationDispatcher:
    """A per-process queue of delivery ids and the thread that sends them to Celery."""

    def __init__(self, send: Callable[[list[int]], bool] = send_batch, *, max_batch: int = MAX_BATCH,
                 linger: float = LINGER_SECONDS) -> None:
        self._send = send
        self._max_batch = max_batch
        self._linger = linger
        self._reset()
        # A forked child (a gunicorn worker) has the queue's memory but not its thread.
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._pending: deque[int] = deque()
        self._sending = 0
        self._thread: threading.Thread | None = None

    def submit(self, delivery_id: int) -> None:
        """Queue one id; never blocks on the broker."""
        with self._wake:
            self._pending.append(delivery_id)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="webhook-publication", daemon=True)
                self._thread.start()
            if len(self._pending) == 1:
                # Only the first id of a batch wakes the thread; the rest join during its linger.
                self._wake.notify_all()

    def pending(self) -> int:
        with self._lock:
            return len(self._pending) + self._sending

    def flush(self, timeout: float) -> bool:
        """Wait until everything queued has been handed to the broker (or refused); True when done."""
        deadline = time.monotonic() + timeout
        with self._wake:
            while self._pending or self._sending:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._wake.wait(remaining)
        return True

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._pending:
                    self._wake.wait()
            if self._linger and len(self._pending) < self._max_batch:
                time.sleep(self._linger)
            with self._wake:
                batch = [self._pending.popleft() for _ in range(min(len(self._pending), self._max_batch))]
                self._sending = len(batch)
            try:
                self._send(batch)
            except Exception:
                # The thread must outlive any failure; these rows wait for the sweep.
                logger.exception("could not enqueue the publication of %d deliveries", len(batch))
            finally:
                with self._wake:
                    self._sending = 0
                    self._wake.notify_all()


dispatcher = PublicationDispatcher()


@atexit.register
def _flush_at_exit() -> None:
    if dispatcher.pending():
        dispatcher.flush(EXIT_FLUSH_SECONDS)
