"""The health-check contract between a connection type and `integrations.health`.

A type's ``probe(context) -> HealthResult`` does the network part only: it gets the
connection's values (config and decrypted secrets) and a time budget, and answers
``healthy``, ``degraded`` (reachable but refusing service for now, e.g. HTTP 429),
``unhealthy`` or ``unknown`` (the check does not apply). It never touches the database
rows of the health state: smoothing and persistence are `integrations.health`'s job, so
two writers never race on them. ``detail`` is a short sentence built by the probe itself,
never a peer's raw error text that could echo a credential; the health service also
removes any secret value from it before it is stored.
"""
from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

HEALTHY = "healthy"
DEGRADED = "degraded"
UNHEALTHY = "unhealthy"
UNKNOWN = "unknown"
DETAIL_MAX_CHARS = 500


@dataclass(frozen=True)
class ProbeContext:
    """What a probe may use: the connection's identity, its values, and its time budget."""

    connection_id: int
    name: str
    values: Mapping[str, Any]  # config with the type's defaults, plus decrypted secrets
    timeout: float  # seconds for the whole check
    connection: Any = field(default=None, repr=False)  # the Connection row, for non-network checks

    @property
    def http_timeout(self) -> tuple[float, float]:
        """(connect, read) for ``synthorg.http.http_request`` within the budget."""
        return (min(5.0, self.timeout), self.timeout)


@dataclass(frozen=True)
class HealthResult:
    status: str
    detail: str = ""
    latency_ms: int | None = None
    checked_at: datetime | None = None
    # Seconds a peer asked us to wait (HTTP 429 Retry-After): the next probe waits at least that.
    retry_after: float | None = None
    # When the credential expires, when the peer says so (GitHub's token-expiration header):
    # recorded on Connection.expires_at so alerts warn ahead (issue 16).
    credential_expires_at: datetime | None = None

    def stamped(self, *, checked_at: datetime, latency_ms: int) -> HealthResult:
        return replace(self, checked_at=checked_at,
                       latency_ms=self.latency_ms if self.latency_ms is not None else latency_ms)

    def as_dict(self) -> dict[str, Any]:
        return {"status": self.status, "latency_ms": self.latency_ms,
                "checked_at": self.checked_at.isoformat() if self.checked_at else None,
                "detail": self.detail}


def healthy(detail: str = "") -> HealthResult:
    return HealthResult(HEALTHY, detail)


def unhealthy(detail: str) -> HealthResult:
    return HealthResult(UNHEALTHY, detail)


def tls_client_context() -> ssl.SSLContext:
    """Verifying TLS context for raw-socket checks (SMTP STARTTLS), trusting what HTTP trusts.

    ``synthorg.http`` honours ``REQUESTS_CA_BUNDLE`` for internal CAs; the SMTP check does
    the same so one variable covers both.
    """
    return ssl.create_default_context(cafile=os.environ.get("REQUESTS_CA_BUNDLE") or None)
