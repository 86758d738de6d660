"""Issue 13 §3: Debian's nginx with deploy/nginx.conf in front of gunicorn with
deploy/gunicorn.conf.py. Slow clients stay in nginx; the receiver keys on the sender's address.

The server runs on SQLite in the test's own directory (as tests/e2e/test_gunicorn_static.py), so
nothing it stores is shared with another run.
"""
from __future__ import annotations

import http.client
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.embedded import ROOT, free_port
from webhooks.verifiers.github import sign_github

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

NGINX = "/usr/sbin/nginx"
TEMPLATE = ROOT / "deploy" / "nginx.conf"
GUNICORN_CONF = ROOT / "deploy" / "gunicorn.conf.py"
PLACEHOLDERS = ("SYNTHORG_LISTEN", "SYNTHORG_UPSTREAM", "SYNTHORG_MAX_PAYLOAD_BYTES")
SECRET = "front-door-signing-secret"
# The sender: another loopback address than nginx's, so "the sender" and "the proxy" differ.
SENDER = "127.0.0.2"


def render(template: str, values: dict[str, str]) -> str:
    """What envsubst does with exactly these names (nginx's own $variables stay)."""
    rendered = re.sub(r"\$\{(" + "|".join(PLACEHOLDERS) + r")\}", lambda m: values[m.group(1)], template)
    assert "${" not in rendered
    return rendered


def wait_until_up(port: int, process: subprocess.Popen[bytes], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/healthz")
            if connection.getresponse().status == 200:
                return
        except OSError:
            pass
        assert process.poll() is None, f"{what} exited: {process.stderr.read().decode()[-2000:] if process.stderr else ''}"
        assert time.monotonic() < deadline, f"{what} did not come up"
        time.sleep(0.2)


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


@dataclass
class FrontDoor:
    port: int
    database: Path

    def request(self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None,
                source: str = SENDER, timeout: float = 10) -> tuple[int, bytes, float]:
        started = time.monotonic()
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout, source_address=(source, 0))
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        data = response.read()
        connection.close()
        return response.status, data, time.monotonic() - started


@pytest.fixture(scope="module")
def front_door() -> Iterator[FrontDoor]:
    if not os.path.exists(NGINX):
        if os.environ.get("SYNTHORG_REQUIRE_SERVICES") == "1":
            pytest.fail(f"{NGINX} is missing (apt-get install nginx; .ci/run installs it)")
        pytest.skip(f"{NGINX} is not installed")
    # nginx's workers drop root privileges (to nobody): their temp directories must be reachable,
    # which pytest's 0700 tmp_path is not.
    base = Path(tempfile.mkdtemp(prefix="synthorg-front-door-"))
    base.chmod(0o755)
    var = base / "var"
    var.mkdir()
    database = var / "db.sqlite3"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SYNTHORG_", "DJANGO_", "CELERY_", "GUNICORN_"))
           and k not in {"DEBUG", "DATABASE_URL", "REDIS_URL", "WEB_CONCURRENCY", "PYTEST_CURRENT_TEST"}}
    gunicorn_port, nginx_port = free_port(), free_port()
    env.update({"SECRET_KEY": "front-door-" + "abcdefghij" * 5,
                "SYNTHORG_MASTER_KEY": "qbYj6U5c3rSRlFqbpNHXHw0fyV0TGCkZjmdYk1t1l0A=",
                "SYNTHORG_VAR_DIR": str(var), "STATIC_ROOT": str(var), "DATABASE_URL": f"sqlite:///{database}",
                "SYNTHORG_ALLOW_INSECURE_HTTP": "1", "GUNICORN_BIND": f"127.0.0.1:{gunicorn_port}",
                "WEB_CONCURRENCY": "2", "GUNICORN_ACCESS_LOG": "/dev/null",
                # nginx talks to gunicorn from 127.0.0.1; nothing else is believed.
                "SYNTHORG_CFG__TRUSTED_PROXIES": "[127.0.0.1/32]"})
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env,
                   check=True, timeout=180)
    subprocess.run([sys.executable, "manage.py", "shell", "-c",
                    "from integrations.services import connection_create; connection_create(name='gh', "
                    f"connection_type='github', credentials={{'token': 'ghp_x', 'signing_secret': '{SECRET}'}})"],
                   cwd=ROOT, env=env, check=True, timeout=120)
    gunicorn = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", str(GUNICORN_CONF), "synthorg.wsgi"],
                                cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                start_new_session=True)
    conf = base / "nginx.conf"
    conf.write_text(render(TEMPLATE.read_text(), {"SYNTHORG_LISTEN": f"127.0.0.1:{nginx_port}",
                                                 "SYNTHORG_UPSTREAM": f"127.0.0.1:{gunicorn_port}",
                                                 "SYNTHORG_MAX_PAYLOAD_BYTES": "1000000"}))
    nginx = subprocess.Popen([NGINX, "-p", str(base), "-c", str(conf), "-e", str(base / "error.log"),
                              "-g", f"daemon off; pid {base / 'nginx.pid'};"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        wait_until_up(gunicorn_port, gunicorn, "gunicorn")
        wait_until_up(nginx_port, nginx, "nginx")
        yield FrontDoor(port=nginx_port, database=database)
    finally:
        stop(nginx)
        stop(gunicorn)
        shutil.rmtree(base, ignore_errors=True)


def slow_sockets(port: int, count: int) -> list[socket.socket]:
    """Requests that never finish: a promised body that does not come, an unfinished chunked
    body, unfinished headers (the three shapes that froze the sync workers)."""
    shapes = [
        b"POST /api/v1/webhooks/gh/push HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: 900000\r\n\r\n{\"zen\": ",
        b"POST /api/v1/webhooks/gh/push HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n10\r\n{\"zen\": \"keep",
        b"POST /api/v1/webhooks/gh/push HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ",
    ]
    sockets = []
    for index in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        sock.sendall(shapes[index % len(shapes)])
        sockets.append(sock)
    return sockets


def test_fifty_slow_clients_do_not_delay_healthz(front_door: FrontDoor) -> None:
    sockets = slow_sockets(front_door.port, 50)
    try:
        time.sleep(0.5)  # let nginx take them all in
        for sock in sockets[:10]:
            sock.sendall(b"x")  # trickle: still alive, still unfinished
        timings = []
        for _ in range(5):
            status, _body, elapsed = front_door.request("GET", "/healthz", source="127.0.0.1", timeout=5)
            assert status == 200
            timings.append(elapsed)
        assert max(timings) < 1.0, timings
        # And a complete delivery goes through while they hang.
        body = b'{"zen": "while slow clients wait"}'
        status, data, elapsed = front_door.request("POST", "/api/v1/webhooks/gh/push", body=body, headers={
            "Content-Type": "application/json", **sign_github(SECRET.encode(), body, event="push", delivery="slow-1")})
        assert status == 202, data
        assert elapsed < 1.0
    finally:
        for sock in sockets:
            sock.close()


def test_delivery_through_the_proxy_is_keyed_on_the_senders_address(front_door: FrontDoor) -> None:
    body = b'{"zen": "from the sender"}'
    headers = {"Content-Type": "application/json", "X-Forwarded-For": "6.6.6.6",
               **sign_github(SECRET.encode(), body, event="push", delivery="keyed-1")}
    status, data, _ = front_door.request("POST", "/api/v1/webhooks/gh/push", body=body, headers=headers)
    assert status == 202, data
    with sqlite3.connect(front_door.database) as db:
        [(remote_ip,)] = db.execute("SELECT remote_ip FROM webhooks_delivery WHERE provider_delivery_id = ?",
                                    ("keyed-1",)).fetchall()
    # Not nginx (127.0.0.1), not the forged 6.6.6.6: the address nginx saw the sender at.
    assert remote_ip == SENDER


def test_bodies_above_the_payload_limit_stop_at_nginx(front_door: FrontDoor) -> None:
    status, _body, _ = front_door.request("POST", "/api/v1/webhooks/gh/push", body=b"x" * 1_000_001,
                                          headers={"Content-Type": "application/json"})
    assert status == 413


def test_request_id_passes_through_both_ways(front_door: FrontDoor) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", front_door.port, timeout=5)
    connection.request("GET", "/healthz", headers={"X-Request-ID": "front-door-probe-1"})
    response = connection.getresponse()
    response.read()
    assert response.getheader("X-Request-ID") == "front-door-probe-1"


def test_compose_renders_the_template_into_a_valid_nginx_conf(tmp_path: Path) -> None:
    """docker-compose's own command (its `$$` unescaped) through the real envsubst, then `nginx -t`."""
    import yaml

    if not os.path.exists(NGINX) or shutil.which("envsubst") is None:
        if os.environ.get("SYNTHORG_REQUIRE_SERVICES") == "1":
            pytest.fail("nginx and envsubst are required")
        pytest.skip("nginx or envsubst is not installed")
    service = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["nginx"]
    script = service["command"][2].replace("$$", "$")
    script = script.replace("/etc/nginx/synthorg/nginx.conf", str(TEMPLATE))
    script = script.replace("/etc/nginx/nginx.conf", str(tmp_path / "nginx.conf"))
    script = script.split("&& exec nginx")[0]
    env = {"PATH": os.environ["PATH"], **service["environment"],
           # The compose network's name does not resolve here; the default of the size limit is compose's.
           "SYNTHORG_UPSTREAM": "127.0.0.1:8000", "SYNTHORG_LISTEN": f"127.0.0.1:{free_port()}",
           "SYNTHORG_MAX_PAYLOAD_BYTES": re.fullmatch(r"\$\{\w+:-(\d+)\}",
                                                      service["environment"]["SYNTHORG_MAX_PAYLOAD_BYTES"]).group(1)}
    subprocess.run(["/bin/sh", "-c", script], env=env, check=True, timeout=30)
    rendered = (tmp_path / "nginx.conf").read_text()
    assert "${" not in rendered and "$proxy_add_x_forwarded_for" in rendered and "$http_host" in rendered
    assert "client_max_body_size 1000000;" in rendered
    tmp_path.chmod(0o755)
    check = subprocess.run([NGINX, "-t", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf"),
                            "-e", str(tmp_path / "error.log"), "-g", f"pid {tmp_path / 'nginx.pid'};"],
                           capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stderr


def test_metrics_are_not_served_through_the_front_door(front_door: FrontDoor) -> None:
    # Behind a proxy on the same host every client is loopback to gunicorn, which the metrics
    # endpoint admits by default: nginx refuses the path itself.
    status, _body, _ = front_door.request("GET", "/metrics", source="127.0.0.1")
    assert status == 404
