"""The admin index cards for connections and the tunnel."""
from __future__ import annotations

from django.db.models import Count
from django.http import HttpRequest
from django.urls import reverse

from integrations.models import Connection, TunnelState
from synthorg.dashboard import Card, Stat

_TONES = {"healthy": "good", "degraded": "warn", "unhealthy": "bad"}


def connections_card(request: HttpRequest) -> Card:
    changelist = reverse("admin:integrations_connection_changelist")
    by_type = dict(Connection.objects.values_list("connection_type").annotate(n=Count("id")))
    by_status = dict(Connection.objects.values_list("health_status").annotate(n=Count("id")))
    stats = [Stat("all connections", sum(by_type.values()), changelist)]
    stats += [Stat(f"type {name}", count, f"{changelist}?connection_type__exact={name}")
              for name, count in sorted(by_type.items())]
    stats += [Stat(status.label.lower(), by_status.get(status.value, 0),
                   f"{changelist}?health_status__exact={status.value}", _TONES.get(status.value, ""))
              for status in Connection.HealthStatus]
    return Card(title="Connections", stats=stats, order=10)


def tunnel_card(request: HttpRequest) -> Card:
    state = TunnelState.objects.first()
    status = state.status if state else TunnelState.Status.STOPPED
    page = reverse("admin:integrations_tunnelstate_changelist")  # the tunnel page: start/stop and URLs
    stats = [Stat("state", status, page,
                  tone="good" if status == "running" else ("bad" if status == "error" else ""))]
    if state and state.public_url:
        stats.append(Stat("public URL", state.public_url))
    return Card(title="Tunnel", stats=stats, order=60)
