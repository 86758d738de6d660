"""Group commit: the receiver threads of one process that are storing a delivery at the same
moment share one INSERT statement and one commit (issue 15 §7).

Under a threaded web worker (gunicorn ``gthread``) several requests reach the store step
together. Each would otherwise send its own autocommitted INSERT and wait for its own WAL
flush; PostgreSQL spends most of a small insert's cost on the statement and the commit, not
on the row. Here the first thread to arrive becomes the *leader*: it takes every row queued
so far (its own included) and sends them as one multi-row statement; rows that arrive while
it runs queue up for the next leader. Each thread returns only once the statement holding
its row has committed, so the promise is unchanged: a delivery is stored before its 202.

A lone request (a sync worker, a quiet moment) is a batch of one: the same single statement
as before, with one uncontended lock around it. When a batch fails (a value the database
refuses, a connection lost), its rows are tried one by one, so one bad row never costs the
others their answer and each thread gets its own result or its own exception.
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

# Rows in one statement at most: bounds the statement's size (and the prepared statements
# PostgreSQL keeps, one per batch size); a web worker never has more threads than this.
MAX_BATCH = 32


class InterruptedStore(RuntimeError):
    """The leader's statement was interrupted (its thread stopped): the row may not be stored."""


class _Slot(Generic[T, R]):
    __slots__ = ("done", "error", "item", "result")

    def __init__(self, item: T) -> None:
        self.item = item
        self.done = False
        self.result: R | None = None
        self.error: BaseException | None = None


class GroupCommit(Generic[T, R]):
    """``submit(item)`` runs ``run_batch([... item ...])`` and returns this item's result.

    ``run_batch`` takes a list of items and returns one result per item, in order; it must be
    all-or-nothing (one statement in autocommit mode is), so a failed batch can be tried again
    row by row.
    """

    def __init__(self, run_batch: Callable[[list[T]], list[R]], *, max_batch: int = MAX_BATCH) -> None:
        self._run_batch = run_batch
        self._max_batch = max_batch
        self._changed = threading.Condition(threading.Lock())
        self._queue: list[_Slot[T, R]] = []
        self._leading = False
        self.batches = 0  # statements sent by this process (for tests and the bench)
        self.rows = 0

    def submit(self, item: T) -> R:
        slot: _Slot[T, R] = _Slot(item)
        with self._changed:
            self._queue.append(slot)
        while True:
            with self._changed:
                while not slot.done and self._leading:
                    self._changed.wait()
                if slot.done:
                    return self._outcome(slot)
                # No statement in flight: lead one with the oldest rows queued (at most
                # max_batch; when this slot is not among them, the next round takes it).
                self._leading = True
                batch, self._queue = self._queue[:self._max_batch], self._queue[self._max_batch:]
            try:
                self._run(batch)
            finally:
                with self._changed:
                    self._leading = False
                    self._changed.notify_all()

    def _run(self, batch: list[_Slot[T, R]]) -> None:
        self.batches += 1
        self.rows += len(batch)
        try:
            results = self._run_batch([slot.item for slot in batch])
        except Exception as exc:
            if len(batch) == 1:
                batch[0].error = exc
            else:
                # Nothing of the batch was stored (one statement): each row on its own.
                for slot in batch:
                    self._run([slot])
                return
        except BaseException:
            # The leader itself is being stopped: the others answer an error (their sender
            # retries), never a result they did not get.
            for slot in batch:
                slot.error = InterruptedStore("the statement storing this row was interrupted")
            raise
        else:
            for slot, result in zip(batch, results, strict=True):
                slot.result = result
        finally:
            for slot in batch:
                slot.done = True

    @staticmethod
    def _outcome(slot: _Slot[T, R]) -> R:
        if slot.error is not None:
            raise slot.error
        return slot.result  # type: ignore[return-value]
