"""gunicorn settings for the web service: the one file docker-compose, the Dockerfile, the tests
and the README use (`gunicorn -c deploy/gunicorn.conf.py synthorg.wsgi`).

gunicorn runs behind nginx (deploy/nginx.conf), which buffers whole requests and responses, so a
sync worker is never held by a slow client; the timeouts below only bound the application.
Every value can be changed from the environment; command-line flags still override this file.
"""
from __future__ import annotations

import os
from typing import Any

from synthorg.shutdown import GRACEFUL_SECONDS


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise SystemExit(f"synthorg: configuration error: {name}={raw!r} is not an integer") from None


bind = [os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")]
# WEB_CONCURRENCY is gunicorn's (and most platforms') name for the worker count.
workers = _int("WEB_CONCURRENCY", 4)
worker_class = "sync"
# A worker silent for this long is killed and replaced (a request stuck in the application).
timeout = _int("GUNICORN_TIMEOUT", 30)
# On SIGTERM, requests in flight get this long to finish (docker-compose's stop_grace_period is longer).
# synthorg/shutdown.py holds it with the timeouts that must agree with it (SYNTHORG_GRACEFUL_SECONDS);
# GUNICORN_GRACEFUL_TIMEOUT still overrides it for gunicorn alone.
graceful_timeout = _int("GUNICORN_GRACEFUL_TIMEOUT", GRACEFUL_SECONDS)
# Idle keep-alive with nginx; above nginx's own upstream keepalive_timeout would waste workers.
keepalive = _int("GUNICORN_KEEPALIVE", 5)
# Recycle each worker after about this many requests (a leak never grows without bound); the
# jitter keeps the workers from restarting all at once.
max_requests = _int("GUNICORN_MAX_REQUESTS", 2000)
max_requests_jitter = _int("GUNICORN_MAX_REQUESTS_JITTER", 200)
# Request lines and headers: the same bounds nginx applies in front.
limit_request_line = 8190
limit_request_fields = 100

accesslog = os.environ.get("GUNICORN_ACCESS_LOG", "-")
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
# The request id is the response's X-Request-ID (synthorg.middleware.RequestIdMiddleware keeps
# the one nginx or the caller sent, or makes one), so one id ties nginx, gunicorn and app logs.
# %(h)s is the peer (nginx); the client address is in the app's logs and the audit log.
access_log_format = ('%(h)s "%(r)s" %(s)s %(B)s %(M)sms request_id=%({x-request-id}o)s '
                     'forwarded_for="%({x-forwarded-for}i)s" "%(a)s"')

# LOG_FORMAT=json: gunicorn's own lines (errors, access) are JSON objects too, with the same keys as
# the application's (synthorg/log_format.py), so an aggregator reads one format from this process.
if os.environ.get("LOG_FORMAT", "").strip().lower() == "json":
    logconfig_dict = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "synthorg.log_format.JsonLogFormatter"}},
        "handlers": {
            "console": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stdout"},
            "error_console": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"},
        },
        "root": {"level": "INFO", "handlers": ["console"]},
        "loggers": {
            "gunicorn.error": {"level": loglevel.upper(), "handlers": ["error_console"], "propagate": False},
            "gunicorn.access": {"level": "INFO", "handlers": ["console"], "propagate": False},
        },
    }

# The heartbeat file every worker touches; on a tmpfs a slow disk never makes the master think
# a busy worker hung. gunicorn makes the file with mkstemp and unlinks it at once.
_SHM = "/dev/shm"  # noqa: S108
worker_tmp_dir = _SHM if os.path.isdir(_SHM) and os.access(_SHM, os.W_OK) else None


def post_fork(server: Any, worker: Any) -> None:
    """A live web process in the metrics (synthorg/metrics.py; the directory is set by settings)."""
    from synthorg.metrics import process_started

    process_started("web")


def child_exit(server: Any, worker: Any) -> None:
    """A worker that exited (recycled, killed, timed out) leaves the live gauges; its counters stay."""
    from synthorg.metrics import process_dead

    process_dead(worker.pid)


def on_starting(server: Any) -> None:
    """Check the configuration once in the master, before any socket or worker exists: a broken
    configuration stops gunicorn with one line (issue 13 §4) instead of workers failing one
    after another. Workers check again on boot (synthorg/wsgi.py) and halt the master with
    gunicorn's worker-boot-error code if gunicorn was started without this file."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "synthorg.settings")
    import django

    from synthorg.startup import check_or_exit, exit_on_configuration_error

    with exit_on_configuration_error():
        django.setup()
    check_or_exit()
    # Nothing the checks opened may be shared with the forked workers.
    from django.db import connections

    connections.close_all()
