"""The production configuration under gunicorn with DEBUG off: admin static files are served."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.e2e.embedded import ROOT, free_port

pytestmark = pytest.mark.e2e


def test_admin_static_files_served_by_gunicorn_without_debug(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SYNTHORG_", "DJANGO_", "CELERY_", "GUNICORN_"))
           and k not in {"DEBUG", "DATABASE_URL", "REDIS_URL", "WEB_CONCURRENCY"}}
    env.update({"SECRET_KEY": "prod-like-" + "abcdefghij" * 5, "SYNTHORG_MASTER_KEY": "qbYj6U5c3rSRlFqbpNHXHw0fyV0TGCkZjmdYk1t1l0A=",
                "SYNTHORG_VAR_DIR": str(tmp_path), "STATIC_ROOT": str(tmp_path / "static"),
                "DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3", "SYNTHORG_ALLOW_INSECURE_HTTP": "1"})
    subprocess.run([sys.executable, "manage.py", "collectstatic", "--noinput", "-v", "0"], cwd=ROOT, env=env,
                   check=True, timeout=120)
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env,
                   check=True, timeout=120)
    port = free_port()
    # The deployment's own gunicorn settings (deploy/gunicorn.conf.py), on a free port.
    env.update({"GUNICORN_BIND": f"127.0.0.1:{port}", "WEB_CONCURRENCY": "1"})
    server = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", str(ROOT / "deploy" / "gunicorn.conf.py"),
                               "synthorg.wsgi"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline and server.poll() is None, "gunicorn did not come up"
            time.sleep(0.3)
        login = requests.get(f"{base}/admin/login/", timeout=10)
        assert login.status_code == 200
        assert "/static/admin/css/base." in login.text  # hashed name from the manifest
        css_path = login.text.split('href="/static/admin/css/base.', 1)[1].split('"', 1)[0]
        css = requests.get(f"{base}/static/admin/css/base.{css_path}", timeout=10)
        assert css.status_code == 200 and "text/css" in css.headers["Content-Type"]
        assert "max-age" in css.headers.get("Cache-Control", "")
        assert requests.get(f"{base}/api/v1/connections", timeout=10).status_code == 401
        # Swagger UI from drf-spectacular-sidecar through the manifest, under the CSP (issue 12 §6).
        docs = requests.get(f"{base}/api/docs/", timeout=10)
        assert docs.status_code == 200 and "script-src 'self'" in docs.headers["Content-Security-Policy"]
        bundle_path = docs.text.split('<script src="/static/drf_spectacular_sidecar/', 1)[1].split('"', 1)[0]
        assert requests.get(f"{base}/static/drf_spectacular_sidecar/{bundle_path}", timeout=10).status_code == 200
        assert "/static/synthorg/console." in login.text  # the console's own CSS, hashed too
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
