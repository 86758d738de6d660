"""Log context and the JSON log format (``LOG_FORMAT=json``, issue 15 §5).

Every process (web, worker, beat, commands) logs through Django's ``LOGGING``; with
``LOG_FORMAT=json`` each record is one JSON object on one line, made by python-json-logger,
with a fixed set of keys: ``time`` (UTC, ISO 8601), ``level``, ``logger``, ``message``,
``request_id``, ``task_id``, ``task_name``, ``connection_id`` and, when present, ``exc_info``.

Redaction is the same as the text format's: only the formatted message (which the code writes
without secrets: ids, names, exception *types*, ``safe_url``) and the traceback text are
printed. Attributes a caller attaches with ``extra=`` are not copied into the object (the
library's default), except ``connection_id``, so nothing new can leak through the JSON format.
"""
from __future__ import annotations

import contextlib
import contextvars
import logging
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from pythonjsonlogger.json import JsonFormatter

connection_id_var: contextvars.ContextVar[int | str | None] = contextvars.ContextVar("connection_id", default=None)


@contextlib.contextmanager
def bound_connection(connection_id: int | str | None) -> Iterator[None]:
    """Log records written inside carry this connection id."""
    token = connection_id_var.set(connection_id)
    try:
        yield
    finally:
        connection_id_var.reset(token)


class ContextFilter(logging.Filter):
    """Adds the request id, the Celery task (id and name) and the connection id to a record.

    The text format prints the request id; the JSON format prints all of them."""

    def filter(self, record: logging.LogRecord) -> bool:
        from celery._state import get_current_task

        from synthorg.middleware import request_id_var

        record.request_id = request_id_var.get() or "-"
        task = get_current_task()
        request = getattr(task, "request", None) if task is not None else None
        record.task_id = getattr(request, "id", None) if request is not None else None
        record.task_name = getattr(task, "name", None) if record.task_id else None
        if getattr(record, "connection_id", None) is None:
            record.connection_id = connection_id_var.get()
        return True


FIELDS = ("time", "level", "logger", "message", "request_id", "task_id", "task_name", "connection_id")


class JsonLogFormatter(JsonFormatter):
    """One JSON object per line with exactly ``FIELDS`` (and ``exc_info`` / ``stack_info``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # reserved_attrs=every record attribute: nothing beyond FIELDS is copied from `extra`.
        super().__init__(*args, json_ensure_ascii=False, **kwargs)

    def add_fields(self, log_record: dict[str, Any], record: logging.LogRecord,
                   message_dict: dict[str, Any]) -> None:
        log_record["time"] = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        log_record["level"] = record.levelname
        log_record["logger"] = record.name
        log_record["message"] = record.getMessage()
        request_id = getattr(record, "request_id", None)
        if request_id in (None, "-") and isinstance(record.args, Mapping):
            # gunicorn's access records carry the response's X-Request-ID among their atoms.
            request_id = record.args.get("{x-request-id}o")
        log_record["request_id"] = None if request_id in (None, "-") else request_id
        log_record["task_id"] = getattr(record, "task_id", None)
        log_record["task_name"] = getattr(record, "task_name", None)
        log_record["connection_id"] = getattr(record, "connection_id", None)
        # The library puts exc_info / stack_info into message_dict after formatting them.
        for key in ("exc_info", "stack_info"):
            if message_dict.get(key):
                log_record[key] = message_dict[key]
