"""The timeouts of a graceful restart agree (issue 15 §3, synthorg/shutdown.py): gunicorn's
graceful timeout comes from the one module, docker-compose waits longer for web, worker and beat,
and the broker's visibility timeout is above every countdown plus the graceful time."""
from __future__ import annotations

import re
import subprocess
import sys

import yaml
from django.conf import settings

from synthorg import shutdown
from tests.e2e.embedded import ROOT


def seconds(value: str) -> int:
    match = re.fullmatch(r"(\d+)s", value)
    assert match, value
    return int(match.group(1))


def test_compose_waits_longer_than_the_graceful_time() -> None:
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    for name in ("web", "worker", "beat"):
        assert seconds(services[name]["stop_grace_period"]) >= shutdown.STOP_GRACE_SECONDS, name


def test_gunicorn_and_the_broker_use_the_module() -> None:
    out = subprocess.run([sys.executable, "-c", "import runpy; c = runpy.run_path('deploy/gunicorn.conf.py'); "
                          "print(c['graceful_timeout'])"], cwd=ROOT, capture_output=True, text=True, timeout=60,
                         env={"PATH": "/usr/bin:/bin", "SYNTHORG_GRACEFUL_SECONDS": "17", "PYTHONPATH": str(ROOT)})
    assert out.stdout.strip() == "17", out.stderr
    if settings.CELERY_BROKER_URL.startswith("redis"):
        assert settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"] == shutdown.VISIBILITY_TIMEOUT_SECONDS
    from notifications.tasks import MAX_COUNTDOWN_SECONDS as alerts
    from webhooks.services import MAX_RETRY_COUNTDOWN_SECONDS as runs

    assert max(alerts, runs) <= shutdown.MAX_COUNTDOWN_SECONDS
    assert shutdown.VISIBILITY_TIMEOUT_SECONDS > shutdown.MAX_COUNTDOWN_SECONDS + shutdown.GRACEFUL_SECONDS


def test_a_visibility_timeout_below_the_countdowns_stops_the_process() -> None:
    out = subprocess.run([sys.executable, "-c", "import synthorg.shutdown"], cwd=ROOT, capture_output=True, text=True,
                         timeout=60, env={"PATH": "/usr/bin:/bin", "SYNTHORG_BROKER_VISIBILITY_TIMEOUT": "300"})
    assert out.returncode != 0 and "SYNTHORG_BROKER_VISIBILITY_TIMEOUT=300 is outside" in out.stderr
