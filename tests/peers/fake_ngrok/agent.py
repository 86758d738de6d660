"""A stand-in for the ngrok v3 agent, for pyngrok to drive (the real agent cannot be downloaded here).

It behaves like the agent as pyngrok 9 sees it:
* `ngrok start --none --log stdout [--config F] [--authtoken T] [--region R]` prints logfmt
  lines: `starting web service ... addr=127.0.0.1:PORT`, `client session established`,
  `tunnel session started` (the three pyngrok waits for), then serves the local API;
* the local API: `GET/POST /api/endpoints`, `GET/DELETE /api/endpoints/<name>`
  (and the v2 `/api/tunnels` aliases), JSON in and out;
* without an auth token (`--authtoken`, `NGROK_AUTHTOKEN` or `agent.authtoken` in the
  `--config` file) it fails like the agent,
  `lvl=eror ... err="... ERR_NGROK_4018 ..."`, and exits 1.

Knobs (environment): `FAKE_NGROK_RECORD` a file to which every invocation and API call is
appended as one JSON line (argv without the token, whether a token came by env/argv);
`FAKE_NGROK_MODE=hang` prints nothing and waits (pyngrok's startup timeout);
`FAKE_NGROK_MODE=crash` prints an error line and exits.
Tests copy this file into their own temporary directory as an executable named `ngrok`.
"""
from __future__ import annotations

import json
import os
import secrets
import signal
import sys
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ENDPOINTS: dict[str, dict[str, Any]] = {}
LOCK = threading.Lock()


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S+0000")


def log(line: str) -> None:
    sys.stdout.write(f"t={now()} {line}\n")
    sys.stdout.flush()


def record(event: dict[str, Any]) -> None:
    path = os.environ.get("FAKE_NGROK_RECORD")
    if path:
        with LOCK, open(path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(event) + "\n")


def option(argv: list[str], name: str) -> str | None:
    return argv[argv.index(name) + 1] if name in argv and argv.index(name) + 1 < len(argv) else None


class Api(BaseHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:  # keep stdout for the agent's own log lines
        pass

    def _send(self, status: int, body: dict[str, Any] | None = None) -> None:
        data = json.dumps(body).encode() if body is not None else b""
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _parts(self) -> list[str]:
        return [p for p in self.path.split("?")[0].split("/") if p]

    def do_GET(self) -> None:
        parts = self._parts()
        record({"api": "GET", "path": self.path})
        if parts[:2] in (["api", "endpoints"], ["api", "tunnels"]):
            with LOCK:
                if len(parts) == 2:
                    key = "endpoints" if parts[1] == "endpoints" else "tunnels"
                    return self._send(200, {key: list(ENDPOINTS.values()), "uri": f"/api/{parts[1]}"})
                endpoint = ENDPOINTS.get(parts[2])
            if endpoint is None:
                return self._send(404, {"error_code": 102, "status_code": 404, "msg": "endpoint not found"})
            return self._send(200, endpoint)
        if parts == ["api"]:
            return self._send(200, {})
        return self._send(404, {"msg": "not found"})

    def do_POST(self) -> None:
        parts = self._parts()
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        record({"api": "POST", "path": self.path, "body": body})
        if parts not in (["api", "endpoints"], ["api", "tunnels"]):
            return self._send(404, {"msg": "not found"})
        name = body.get("name") or f"endpoint-{secrets.token_hex(4)}"
        upstream = body.get("upstream") or {"url": f"http://localhost:{body.get('addr', 80)}"}
        endpoint = {
            "id": f"ep_{secrets.token_hex(8)}",
            "name": name,
            "uri": f"/api/{parts[1]}/{name}",
            "url": f"https://{secrets.token_hex(6)}.ngrok-free.app",
            "upstream": upstream,
            "proto": "https",
            "metrics": {},
        }
        with LOCK:
            ENDPOINTS[name] = endpoint
        self._send(201, endpoint)

    def do_DELETE(self) -> None:
        parts = self._parts()
        record({"api": "DELETE", "path": self.path})
        with LOCK:
            removed = ENDPOINTS.pop(parts[2], None) if len(parts) == 3 else None
        self._send(204) if removed else self._send(404, {"msg": "endpoint not found"})


def config_token(path: str | None) -> str | None:
    """`agent.authtoken` of the `--config` file, as the agent reads it at startup."""
    if not path or not os.path.isfile(path):
        return None
    import yaml

    with open(path, encoding="utf-8") as handle:
        data = yaml.safe_load(handle) or {}
    agent = data.get("agent") if isinstance(data, dict) else None
    return (agent or {}).get("authtoken") or None


def main(argv: list[str]) -> int:
    token_argv = option(argv, "--authtoken")
    token_env = os.environ.get("NGROK_AUTHTOKEN")
    token_config = config_token(option(argv, "--config"))
    shown = [a if a != token_argv else "[token]" for a in argv]
    record({"argv": shown, "token_in_argv": token_argv is not None, "token_in_env": bool(token_env),
            "token_in_config": token_config})
    if not argv or argv[0] != "start":
        sys.stdout.write("fake ngrok: only `start` is implemented\n")
        return 2
    mode = os.environ.get("FAKE_NGROK_MODE", "")
    if mode == "hang":
        time.sleep(3600)
        return 0
    if mode == "crash" or not (token_argv or token_env or token_config):
        log('lvl=eror msg="failed to reconnect session" obj=tunnels.session '
            'err="authentication failed: Usage of ngrok requires a verified account and authtoken. ERR_NGROK_4018"')
        return 1
    server = ThreadingHTTPServer(("127.0.0.1", 0), Api)
    signal.signal(signal.SIGTERM, lambda *_: (server.shutdown(), sys.exit(0)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    host, port = server.server_address[:2]
    log(f'lvl=info msg="starting web service" obj=web addr={host}:{port} allow_hosts=[]')
    log('lvl=info msg="client session established" obj=tunnels.session')
    log('lvl=info msg="tunnel session started" obj=tunnels.session')
    # Nothing more goes to stdout: pyngrok stops reading it after startup (no monitor thread),
    # and a full pipe would block the agent.
    signal.pause()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
