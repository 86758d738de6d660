"""A real Prometheus (Debian's `prometheus` package) scraping the service, for the fleet tests."""
from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import requests
import yaml

from tests.e2e.embedded import ROOT, free_port
from tests.webhooks.processes import Proc, wait_until

ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "synthorg.json"


def binary(name: str) -> str:
    path = shutil.which(name)
    assert path, f"{name} is missing: apt-get install prometheus (make test and .ci/run install it: .ci/system-packages)"
    return path


def start(targets: list[str], log_dir: Path) -> tuple[Proc, str]:
    """Scrape ``targets`` (host:port) every second and evaluate the alert rules every second."""
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(ALERTS)],
        "scrape_configs": [{"job_name": "synthorg", "metrics_path": "/metrics",
                            "static_configs": [{"targets": targets}]}],
    }
    config_file = log_dir / "prometheus.yml"
    config_file.write_text(yaml.safe_dump(config))
    port = free_port()
    proc = Proc("prometheus", [binary("prometheus"), f"--config.file={config_file}",
                               f"--storage.tsdb.path={log_dir / 'prometheus-data'}",
                               f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"], {}, log_dir)
    base = f"http://127.0.0.1:{port}"
    wait_until(lambda: _ready(base), 60, "prometheus to be ready")
    return proc, base


def _ready(base: str) -> bool:
    try:
        return requests.get(base + "/-/ready", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def query(base: str, expr: str) -> list[dict[str, Any]]:
    answer = requests.get(base + "/api/v1/query", params={"query": expr}, timeout=10).json()
    assert answer["status"] == "success", (expr, answer)
    return answer["data"]["result"]


def has_data(base: str, expr: str) -> bool:
    """At least one series with a number (a quantile of no observations is NaN: no data)."""
    return any(not math.isnan(float(item["value"][1])) for item in query(base, expr))


def dashboard_queries() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [(panel["title"], target["expr"]) for panel in dashboard["panels"] for target in panel["targets"]]


def alert_rules() -> list[tuple[str, str]]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [(rule["alert"], rule["expr"]) for group in groups for rule in group["rules"]]
