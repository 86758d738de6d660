"""The tunnel owner: the one process that runs the ngrok agent (`make run` starts it).

Web processes record the desired state; this loop reconciles it every `--interval`
seconds and writes a heartbeat, so any web process reports the same tunnel. SIGTERM or
Ctrl-C stops the agent and records the tunnel as stopped.
"""
from __future__ import annotations

import signal
import threading
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from integrations.tunnel import TunnelOwner

# Set by a signal, or by a test running the command in a thread.
stop_event = threading.Event()


class Command(BaseCommand):
    help = "Run the tunnel owner: start/stop the ngrok agent as the API and admin ask."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--interval", type=float, default=2.0, help="seconds between reconciliations")

    def handle(self, *args: Any, **options: Any) -> None:
        stop_event.clear()
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: stop_event.set())
        owner = TunnelOwner()
        self.stdout.write(f"tunnel owner {owner.owner_id} running (interval {options['interval']} s)")
        owner.run(interval=options["interval"], stop=stop_event)
        self.stdout.write("tunnel owner stopped")
