"""A private RabbitMQ node for the broker tests: its own node name, AMQP, distribution and epmd
ports, data, log and config files, Erlang cookie (HOME) and no plugins, so it never touches the
machine's shared node on 5672. Started with Debian's rabbitmq-server (the wrapper in /usr/sbin
switches to the rabbitmq user; the script beside it runs as whoever starts it)."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
from pathlib import Path

from tests.fleet.procs import restartable_port
from tests.webhooks.processes import Proc, wait_until

SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"
CTL = "/usr/lib/rabbitmq/bin/rabbitmqctl"


def available() -> bool:
    return os.access(SERVER, os.X_OK) and shutil.which("erl") is not None


class RabbitNode:
    def __init__(self, base: Path) -> None:
        self.base = base
        # Kept across a restart of the node, so outside the ephemeral range.
        self.port = restartable_port()
        self.name = f"synthorg-test-{self.port}@localhost"
        self.dist_port = restartable_port()
        self.epmd_port = restartable_port()
        self.proc: Proc | None = None
        (base / "home").mkdir(parents=True, exist_ok=True)
        (base / "log").mkdir(exist_ok=True)
        (base / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = 127.0.0.1:{self.port}\n"
            "disk_free_limit.absolute = 50MB\n"
            "loopback_users.guest = true\n"
            "log.console = true\nlog.console.level = warning\nlog.file = false\n")
        (base / "enabled_plugins").write_text("[].\n")

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}//"

    def env(self) -> dict[str, str]:
        return {
            **{k: v for k, v in os.environ.items() if not k.startswith("RABBITMQ_")},
            "HOME": str(self.base / "home"), "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_NODE_PORT": str(self.port), "RABBITMQ_DIST_PORT": str(self.dist_port),
            "ERL_EPMD_PORT": str(self.epmd_port),
            "RABBITMQ_CONFIG_FILE": str(self.base / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.base / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(self.base / "mnesia"), "RABBITMQ_LOG_BASE": str(self.base / "log"),
            "RABBITMQ_PID_FILE": str(self.base / "rabbitmq.pid"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(self.base / "advanced.config"),
        }

    def start(self, log_dir: Path, timeout: float = 90) -> RabbitNode:
        self.proc = Proc(f"rabbitmq-{self.port}", [SERVER], self.env(), log_dir)
        wait_until(self._accepts, timeout, "the private RabbitMQ node to accept connections")
        return self

    def _accepts(self) -> bool:
        assert self.proc is not None
        if self.proc.process.poll() is not None:
            raise AssertionError(f"rabbitmq-server exited with {self.proc.process.returncode}")
        out = subprocess.run([CTL, "-n", self.name, "await_startup", "--timeout", "5"], env=self.env(),
                             capture_output=True, text=True, timeout=30)
        if out.returncode != 0:
            return False
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=2):
                return True
        except OSError:
            return False

    def stop(self, sig: int | None = None) -> None:
        if self.proc is None:
            return
        import signal

        self.proc.stop(sig or signal.SIGTERM)
        # A SIGKILLed node leaves its epmd (started for the private port) behind: stop it too.
        subprocess.run(["epmd", "-port", str(self.epmd_port), "-kill"], env=self.env(), capture_output=True,
                       timeout=10, check=False)
        self.proc = None
