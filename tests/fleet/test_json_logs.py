"""LOG_FORMAT=json (issue 15 §5): every line that gunicorn (with deploy/gunicorn.conf.py) and a
Celery worker write is one JSON object with the fixed keys; request ids, task ids and names and
connection ids are filled where known; a canary secret (credentials, signing secret) appears in
no line, even at DEBUG."""
from __future__ import annotations

import hashlib
import hmac
import io
import json
import logging
from pathlib import Path

import pytest
import requests
from django.conf import settings

from synthorg.log_format import FIELDS, ContextFilter, JsonLogFormatter, bound_connection
from synthorg.middleware import request_id_var
from tests.fleet import procs
from tests.webhooks import processes
from webhooks import services
from webhooks.models import Delivery, WorkflowRun

CANARY = "CANARY-7f3a9c0e5b1d"


def render(record_logger: logging.Logger, emit: object) -> dict[str, object]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonLogFormatter())
    handler.addFilter(ContextFilter())
    record_logger.addHandler(handler)
    try:
        emit()  # type: ignore[operator]
    finally:
        record_logger.removeHandler(handler)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    return json.loads(lines[0])


def test_one_object_per_record_with_the_fixed_keys() -> None:
    log = logging.getLogger("synthorg.tests.json")
    log.setLevel(logging.DEBUG)
    token = request_id_var.set("req-123")
    try:
        with bound_connection(42):
            line = render(log, lambda: log.warning("first\nsecond %s", "arg", extra={"secret": CANARY}))
    finally:
        request_id_var.reset(token)
    assert set(line) == set(FIELDS)
    assert line["message"] == "first\nsecond arg" and line["level"] == "WARNING"
    assert line["logger"] == "synthorg.tests.json" and line["request_id"] == "req-123"
    assert line["connection_id"] == 42 and line["task_id"] is None
    assert str(line["time"]).endswith("+00:00")
    assert CANARY not in json.dumps(line)  # `extra` attributes are not copied

    def boom() -> None:
        try:
            raise ValueError("bad")
        except ValueError:
            log.exception("failed", extra={"connection_id": 7})

    line = render(log, boom)
    assert line["connection_id"] == 7 and "ValueError: bad" in str(line["exc_info"])


def test_bad_log_format_stops_the_process(tmp_path: Path) -> None:
    env = processes.service_env(tmp_path, None)
    env["LOG_FORMAT"] = "xml"
    out = processes.subprocess.run([processes.sys.executable, "manage.py", "check"], cwd=processes.ROOT, env=env,
                                   capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and "LOG_FORMAT must be text or json" in out.stderr


@pytest.mark.django_db(transaction=True)
@pytest.mark.e2e
def test_gunicorn_and_worker_write_json_lines_without_the_canary(tmp_path: Path, postgres: None) -> None:
    from integrations import services as connection_services

    connection = connection_services.connection_create(
        name="gh", connection_type="github", credentials={"token": CANARY, "signing_secret": CANARY + "-sig"})
    services.trigger_rule_create(data={"name": "all", "event_type": "*", "workflow": "log_event"})
    env = processes.service_env(tmp_path, settings.REDIS_URL)
    env.update({"LOG_FORMAT": "json", "LOG_LEVEL": "DEBUG"})
    started = []
    try:
        web, base = procs.gunicorn(env, tmp_path, workers=1)
        started.append(web)
        started.append(procs.worker(env, tmp_path, quiet=True))
        for n in range(3):
            body = json.dumps({"n": n, "action": "opened"}).encode()
            signature = "sha256=" + hmac.new((CANARY + "-sig").encode(), body, hashlib.sha256).hexdigest()
            headers = {"X-GitHub-Event": "push", "X-GitHub-Delivery": f"d-{n}", "X-Hub-Signature-256": signature,
                       "Content-Type": "application/json", "X-Request-ID": f"json-test-{n}"}
            assert requests.post(f"{base}/api/v1/webhooks/gh/auto", data=body, headers=headers,
                                 timeout=30).status_code == 202
        bad = requests.post(f"{base}/api/v1/webhooks/gh/auto", data=b"{}", timeout=30,
                            headers={"X-GitHub-Event": "push", "X-GitHub-Delivery": "d-x",
                                     "X-Hub-Signature-256": "sha256=" + "0" * 64, "X-Request-ID": "json-test-bad"})
        assert bad.status_code == 401
        processes.wait_until(lambda: WorkflowRun.objects.filter(status=WorkflowRun.Status.SUCCEEDED).count() == 3,
                             90, "three runs")
        assert Delivery.objects.filter(connection=connection).count() == 3
    finally:
        for proc in reversed(started):
            proc.stop()
    web_lines = procs.json_lines(tmp_path / "gunicorn.log")
    worker_lines = procs.json_lines(tmp_path / "worker.log")
    for line in web_lines + worker_lines:
        assert set(FIELDS) <= set(line) <= {*FIELDS, "exc_info", "stack_info"}, line
    # The refusal is logged with the request id the sender gave.
    assert any(line["request_id"] == "json-test-bad" and line["level"] == "WARNING" for line in web_lines)
    assert any(line["logger"] == "gunicorn.access" and line["request_id"] == "json-test-0" for line in web_lines)
    # The runs are started by the publication task that created them (issue 15 §6).
    ran = [line for line in worker_lines if line["logger"] == "webhooks.workflows.log_event"]
    assert ran and all(line["task_id"] and line["task_name"] == "webhooks.delivery_publish_batch" for line in ran)
    for path in tmp_path.glob("*.log"):
        assert CANARY not in path.read_text(errors="replace"), path.name
