"""Fixtures for alerts: connections pointing at real peers on 127.0.0.1, sinks, a fixed clock."""
from __future__ import annotations

import email
import email.policy
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from integrations import services as connections
from integrations.types.probing import HealthResult
from notifications import services
from notifications.models import AlertRule
from tests.admin_console.conftest import console, root_console  # noqa: F401  (the console fixtures)
from tests.peers.http_peer import HttpPeer
from tests.peers.smtp_peer import _free_port

# The tests' clock: a whole minute an hour ahead of the real one, so rows the services stamp with
# the real clock (a problem opening now) are never later than it, however long the run takes.
T0 = (datetime.now(UTC) + timedelta(hours=1)).replace(second=0, microsecond=0)


class MailSink:
    """A real SMTP server (aiosmtpd) that keeps every message it receives, parsed."""

    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []
        self.lock = threading.Lock()
        self.controller: Controller | None = None

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        with self.lock:
            self.messages.append(parsed)  # type: ignore[arg-type]
        return "250 OK"

    def start(self) -> MailSink:
        self.controller = Controller(self, hostname="127.0.0.1", port=_free_port(), ready_timeout=10)
        self.controller.start()
        return self

    @property
    def port(self) -> int:
        assert self.controller is not None
        return int(self.controller.port)

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()


@pytest.fixture
def mail_peer() -> Iterator[MailSink]:
    peer = MailSink().start()
    yield peer
    peer.stop()


@pytest.fixture
def http_peer() -> Iterator[HttpPeer]:
    with HttpPeer() as peer:
        yield peer


def smtp_connection(port: int, name: str = "relay") -> Any:
    return connections.connection_create(name=name, connection_type="smtp",
                                         credentials={"host": "127.0.0.1", "port": port, "use_tls": False})


def http_connection(url: str, name: str = "hook-receiver") -> Any:
    return connections.connection_create(name=name, connection_type="generic_http",
                                         credentials={"base_url": url, "token": "receiver-token-123"})


def unhealthy(connection: Any, at: datetime = T0) -> None:
    """Drive the real smoothing to `unhealthy` (three failed results by default)."""
    from integrations.health import health_record

    for _ in range(3):
        health_record(connection_id=connection.pk, result=HealthResult("unhealthy", "refused", 5, at))


def healthy(connection: Any, at: datetime = T0) -> None:
    from integrations.health import health_record

    health_record(connection_id=connection.pk, result=HealthResult("healthy", "ok", 5, at))


def only_rule(events: list[str], **extra: Any) -> AlertRule:
    """Disable the default rules and create one rule (to every sink unless `sinks` is given)."""
    AlertRule.objects.update(enabled=False)
    return services.rule_create(data={"name": "test rule", "events": events, **extra})
