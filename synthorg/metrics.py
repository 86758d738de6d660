"""Prometheus metrics (issue 15 §4), from prometheus-client in multiprocess mode.

Every process of a host (gunicorn workers, Celery worker processes, beat) writes its counters
and histograms into files under ``PROMETHEUS_MULTIPROC_DIR`` (settings.py sets it to
``<var>/metrics`` unless the environment does); ``GET /metrics`` on any web process merges
them. Files are named by ``<host>-<pid>``, so containers that share the directory through a
volume never write each other's files. A process that exits is marked dead (gunicorn's
``child_exit``, Celery's ``worker_process_shutdown``), which drops its live gauge;
its counters keep counting in the sum, as Prometheus expects of counters.

What the database already knows (outbox backlog, connections by health, tokens that need the
operator, the beat leader) is read when Prometheus scrapes (``DatabaseCollector``), so no
process has to keep a gauge up to date.

Labels are bounded: connection types, outcomes, reasons and task names come from the code;
connection *names* appear only when ``integrations.metrics.per_connection`` is true, and
never a secret, a payload, a URL or an address.

Hot paths (the webhook receiver) use label children bound once and cached in a dict.
"""
from __future__ import annotations

import functools
import hmac
import logging
import os
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest, values
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector

logger = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
_HOST = socket.gethostname().replace("_", "-") or "host"


def process_identifier() -> str:
    """This process's name in the metric files (the host keeps containers apart)."""
    return f"{_HOST}-{os.getpid()}"


def multiprocess_dir() -> str | None:
    path = os.environ.get(MULTIPROC_ENV)
    return path if path and os.path.isdir(path) else None


if multiprocess_dir():
    # Before any metric below exists: their values live in files named by process_identifier.
    values.ValueClass = values.MultiProcessValue(process_identifier)

# Latency buckets (seconds): the receiver answers in milliseconds, lags are up to minutes.
FAST = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
LAG = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0)
WORK = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)

PROCESSES = Gauge("synthorg_processes", "Live processes writing metrics, by role.", ["role"],
                  multiprocess_mode="livesum")
WEBHOOK_DELIVERIES = Counter(
    "synthorg_webhook_deliveries", "Webhook requests answered by the receiver, by connection type and outcome "
    "(accepted, duplicate, challenge, rejected, too_large, rate_limited, unavailable, error).",
    ["connection_type", "outcome", "connection"])
WEBHOOK_REJECTIONS = Counter(
    "synthorg_webhook_rejections", "Webhook requests refused or answered as duplicates, by reason.",
    ["connection_type", "reason", "connection"])
WEBHOOK_RECEIVE_SECONDS = Histogram(
    "synthorg_webhook_receive_seconds", "Time the receiver took to answer a webhook request.", buckets=FAST)
PUBLICATION_LAG = Histogram(
    "synthorg_webhook_publication_lag_seconds", "From a delivery's receipt to its publication on the bus.",
    buckets=LAG)
RUN_LAG = Histogram(
    "synthorg_workflow_run_lag_seconds", "From a delivery's receipt to the start of its workflow run "
    "(first attempt).", buckets=LAG)
WORKFLOW_RUNS = Counter("synthorg_workflow_runs", "Workflow run attempts ended, by outcome "
                        "(succeeded, failed, retry).", ["outcome"])
HEALTH_CHECK_SECONDS = Histogram("synthorg_health_check_seconds", "Duration of one connection health check, "
                                 "by connection type.", ["connection_type"], buckets=WORK)
TOKEN_REFRESHES = Counter("synthorg_oauth_token_refreshes", "OAuth token refresh attempts, by outcome "
                          "(refreshed, failed, reauthorization_required, lost_lease).", ["outcome"])
RATE_LIMIT_DECISIONS = Counter("synthorg_ratelimit_decisions", "Shared rate-limiter decisions by key family "
                               "and decision (admitted, refused).", ["scope", "decision"])
SECRET_BACKEND_ERRORS = Counter("synthorg_secret_backend_errors", "Secret backend calls that failed "
                                "(unreachable, sealed, denied), by backend.", ["backend"])
TASK_SECONDS = Histogram("synthorg_celery_task_seconds", "Celery task run time, by task name.", ["task"],
                         buckets=WORK)
TASK_FAILURES = Counter("synthorg_celery_task_failures", "Celery tasks that raised, by task name.", ["task"])


# Known label values start at 0, so a dashboard panel or an alert sees a series before the first
# event (an empty panel would hide a renamed metric; tests/fleet/test_prometheus.py checks).
for _outcome in ("refreshed", "failed", "reauthorization_required", "lost_lease"):
    TOKEN_REFRESHES.labels(_outcome)
for _outcome in ("succeeded", "failed", "retry"):
    WORKFLOW_RUNS.labels(_outcome)
for _backend in ("secret_manager_vault", "secret_manager_cloud_a"):
    SECRET_BACKEND_ERRORS.labels(_backend)
for _scope in ("webhook", "webhook-ip"):
    for _decision in ("admitted", "refused"):
        RATE_LIMIT_DECISIONS.labels(_scope, _decision)

def per_connection() -> bool:
    from synthorg.config import get_config

    return get_config().integrations.metrics.per_connection


# --- cheap recording for the receiver (label children bound once per label tuple) ---------

_deliveries: dict[tuple[str, str, str], Any] = {}
_rejections: dict[tuple[str, str, str], Any] = {}


def _child(cache: dict[tuple[str, str, str], Any], metric: Counter, key: tuple[str, str, str]) -> Any:
    child = cache.get(key)
    if child is None:
        child = cache[key] = metric.labels(*key)
    return child


def webhook_answered(*, connection_type: str | None, connection_name: str | None, status: int,
                     duplicate: bool, seconds: float) -> None:
    outcome = _OUTCOMES.get(status, "rejected" if status < 500 else "error")
    if status == 200:
        outcome = "duplicate" if duplicate else "challenge"
    # A name only for a known connection (its type is known): a URL's made-up name is no series.
    name = connection_name if connection_type and connection_name and per_connection() else ""
    _child(_deliveries, WEBHOOK_DELIVERIES, (connection_type or "unknown", outcome, name)).inc()
    WEBHOOK_RECEIVE_SECONDS.observe(seconds)


_OUTCOMES = {202: "accepted", 413: "too_large", 429: "rate_limited", 503: "unavailable"}


def observed_receiver(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Wraps the webhook receiver's view: one counter increment and one histogram observation
    per request, both on label children cached here (no label lookup, no I/O)."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, connection_name: str, event_type: str) -> HttpResponse:
        started = time.perf_counter()
        status = 500
        response: HttpResponse | None = None
        try:
            response = view(request, connection_name, event_type)
            status = response.status_code
            return response
        finally:
            duplicate = status == 200 and response is not None and response.content.startswith(_DUPLICATE)
            webhook_answered(connection_type=_cached_connection_type(connection_name),
                             connection_name=connection_name, status=status, duplicate=duplicate,
                             seconds=time.perf_counter() - started)

    return wrapper


# The receiver answers a duplicate with json.dumps({"status": "duplicate", ...}).
_DUPLICATE = b'{"status": "duplicate"'


def _cached_connection_type(connection_name: str) -> str | None:
    # The receiver has just read the connection into its per-process cache (webhooks.receiver);
    # a name it does not know (never stored or cached) is "unknown", never the name itself.
    from webhooks import receiver

    cached = receiver._connection_cache.get(connection_name.lower())
    return cached[2].connection_type if cached else None


def webhook_rejected(*, connection_type: str | None, connection_name: str | None, reason: str) -> None:
    # Reasons are the receiver's codes (a fixed set); unknown connections share one series.
    name = connection_name if connection_type and connection_name and per_connection() else ""
    _child(_rejections, WEBHOOK_REJECTIONS, (connection_type or "unknown", reason, name)).inc()


def observe_lag(histogram: Histogram, since: Any) -> None:
    """Seconds from ``since`` (an aware datetime) until now."""
    if since is not None:
        from django.utils import timezone

        histogram.observe(max(0.0, (timezone.now() - since).total_seconds()))


# --- /metrics ---------------------------------------------------------------------------------


class DatabaseCollector(Collector):
    """Gauges read from the database at scrape time: what the rows already say."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily("synthorg_metrics_database_up",
                               "1 when the scrape could read the database-backed gauges.")
        try:
            families = list(self._families())
        except Exception as exc:  # the database is down: say so, keep the process metrics
            logger.warning("metrics: database-backed gauges unavailable (%s)", type(exc).__name__)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families

    def _families(self) -> Iterator[GaugeMetricFamily]:
        from django.db.models import Count, Min
        from django.utils import timezone

        from integrations.models import Connection
        from oauthflow.models import OAuthToken
        from synthorg.beat import leader_now, uses_lock
        from synthorg.models import ServiceHeartbeat
        from webhooks.models import Delivery, WorkflowRun

        now = timezone.now()
        unpublished = Delivery.objects.exclude(publish_state=Delivery.PublishState.PUBLISHED)
        backlog = GaugeMetricFamily("synthorg_outbox_backlog", "Items accepted and not yet handed on, by kind "
                                    "(deliveries not published, workflow runs pending).", labels=["kind"])
        stats = unpublished.aggregate(count=Count("pk"), oldest=Min("received_at"))
        backlog.add_metric(["deliveries"], stats["count"])
        backlog.add_metric(["workflow_runs"], WorkflowRun.objects.filter(status=WorkflowRun.Status.PENDING).count())
        yield backlog
        oldest = GaugeMetricFamily("synthorg_outbox_oldest_seconds",
                                   "Age of the oldest delivery not yet published (0 when none).")
        oldest.add_metric([], (now - stats["oldest"]).total_seconds() if stats["oldest"] else 0.0)
        yield oldest

        health = GaugeMetricFamily("synthorg_connections", "Connections by health state.", labels=["health"])
        counts = dict(Connection.objects.values_list("health_status").annotate(n=Count("pk")).values_list(
            "health_status", "n"))
        for state in Connection.HealthStatus.values:
            health.add_metric([state], counts.get(state, 0))
        yield health
        reauth = OAuthToken.objects.filter(status=OAuthToken.Status.REAUTHORIZATION_REQUIRED)
        tokens = GaugeMetricFamily("synthorg_oauth_tokens_reauthorization_required",
                                   "OAuth tokens that need the operator to connect again.")
        tokens.add_metric([], reauth.count())
        yield tokens
        if per_connection():
            named = GaugeMetricFamily("synthorg_connection_healthy", "1 when the connection is healthy, "
                                      "by name (integrations.metrics.per_connection).", labels=["connection"])
            for name, state in Connection.objects.values_list("name", "health_status"):
                named.add_metric([name], 1 if state == Connection.HealthStatus.HEALTHY else 0)
            yield named

        leader = GaugeMetricFamily("synthorg_beat_leader", "1 when a beat leads (holds the leader lock; on "
                                   "SQLite: beat's heartbeat is fresh).")
        beat = ServiceHeartbeat.objects.filter(name="beat").first()
        age = (now - beat.last_seen_at).total_seconds() if beat else None
        if uses_lock():
            leading = leader_now() is not None
        else:
            from synthorg.config import get_config

            leading = age is not None and age < 3 * get_config().integrations.scheduler.heartbeat_interval_seconds
        leader.add_metric([], 1 if leading else 0)
        yield leader
        heartbeat = GaugeMetricFamily("synthorg_beat_heartbeat_age_seconds",
                                      "Seconds since beat's heartbeat task last ran (-1: never).")
        heartbeat.add_metric([], age if age is not None else -1)
        yield heartbeat


def registry() -> CollectorRegistry:
    """A registry for one scrape: every process's files on this host, then the database gauges."""
    reg = CollectorRegistry()
    path = multiprocess_dir()
    if path:
        MultiProcessCollector(reg, path=path)
    else:
        from prometheus_client import REGISTRY

        for collector in list(REGISTRY._collector_to_names):
            reg.register(collector)
    reg.register(DatabaseCollector())
    return reg


def allowed(meta: Any, authorization: str) -> bool:
    """A client in integrations.metrics.allowed_networks, or the bearer token from token_env."""
    import ipaddress

    from synthorg.client_address import _networks, client_address
    from synthorg.config import get_config

    cfg = get_config().integrations.metrics
    expected = os.environ.get(cfg.token_env, "")
    if expected and authorization.startswith("Bearer "):
        if hmac.compare_digest(authorization[len("Bearer "):].strip().encode(), expected.encode()):
            return True
    address = client_address(meta)
    if not address:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if ip.version == 6 and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return any(ip in network for network in _networks(tuple(cfg.allowed_networks)))



def serve_in_background(bind: str) -> None:
    """``HOST:PORT``: answer ``GET /metrics`` from a thread of this process (the Celery worker on a
    host without a web process sharing its PROMETHEUS_MULTIPROC_DIR), with the same access rule."""
    import threading
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    from django.db import connections

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        if environ.get("PATH_INFO") != "/metrics" or environ.get("REQUEST_METHOD") != "GET":
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found\n"]
        if not allowed(environ, environ.get("HTTP_AUTHORIZATION", "")):
            start_response("403 Forbidden", [("Content-Type", "text/plain")])
            return [b"forbidden\n"]
        try:
            body = generate_latest(registry())
        finally:
            connections.close_all()  # this thread's database connection, opened by the gauges
        start_response("200 OK", [("Content-Type", CONTENT_TYPE_LATEST)])
        return [body]

    class Quiet(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    host, _, port = bind.rpartition(":")
    server = make_server(host or "0.0.0.0", int(port), app, handler_class=Quiet)  # noqa: S104
    threading.Thread(target=server.serve_forever, name="metrics-http", daemon=True).start()
    logger.info("metrics served on %s/metrics", bind)

# --- process lifecycle ----------------------------------------------------------------------


def process_started(role: str) -> None:
    PROCESSES.labels(role).set(1)


def process_dead(pid: int) -> None:
    """Called for a child that exited (gunicorn's child_exit): its live gauges go."""
    path = multiprocess_dir()
    if path:
        mark_process_dead(f"{_HOST}-{pid}", path)



# --- the view -----------------------------------------------------------------------------------


@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    """``GET /metrics``: the Prometheus text format, for allowed networks or the bearer token."""
    if not allowed(request.META, request.headers.get("Authorization", "")):
        return JsonResponse({"detail": "Metrics are served to integrations.metrics.allowed_networks or with "
                                       "the metrics bearer token.", "code": "forbidden"}, status=403)
    return HttpResponse(generate_latest(registry()), content_type=CONTENT_TYPE_LATEST)
