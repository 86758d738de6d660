"""The evaluated events: which subjects are in trouble right now (read-only queries).

Each function returns ``{subject: facts}`` for the subjects whose condition holds;
`notifications.problems.condition_apply` opens what is new and resolves what ended.
These read other apps' tables (tokens, rejection counts, deliveries): `notifications` sits
on top of them and nothing imports it back, so the dependency stays one way.
"""
from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Max, Min, Sum

from integrations.models import Connection
from notifications.event_types import EVENT_TYPES
from notifications.models import AlertRule

Facts = dict[str, dict[str, Any]]


def _connection_facts(connection: Connection, title: str, **details: Any) -> dict[str, Any]:
    return {"title": title, "connection_id": connection.pk, "connection_type": connection.connection_type,
            "connection": connection.name, "details": {"connection": connection.name, **details}}


def _strictest(event: str, name: str) -> Any:
    """The lowest threshold any enabled rule of ``event`` sets: the query finds every candidate
    once, and `ACCEPTS` then holds each rule to its own threshold."""
    return min(_all_values(event, name))


def oauth_refresh_failing(now: datetime) -> Facts:
    # The duration ("for longer than N minutes") is the problem's pending time, see condition_apply.
    from oauthflow.models import OAuthToken

    tokens = (OAuthToken.objects.select_related("connection").filter(failure_count__gt=0)
              .exclude(status=OAuthToken.Status.REAUTHORIZATION_REQUIRED))
    return {f"oauth-refresh:{t.connection_id}": _connection_facts(
        t.connection, f"OAuth token refresh of {t.connection.name} keeps failing",
        failure_count=t.failure_count, last_error=t.last_error[:200]) for t in tokens}


def webhooks_rejections(now: datetime) -> Facts:
    from webhooks.models import RejectionCount

    threshold = _strictest("webhooks.rejections", "rejections_per_5_minutes")
    counts = (RejectionCount.objects.filter(minute__gte=now - timedelta(minutes=5)).exclude(connection_name="")
              .values("connection_name").annotate(total=Sum("count")).filter(total__gt=threshold))
    by_name = {row["connection_name"]: row["total"] for row in counts}
    facts: Facts = {}
    for connection in Connection.objects.filter(name__in=list(by_name)):
        total = by_name[connection.name]
        facts[f"webhook-rejections:{connection.pk}"] = {**_connection_facts(
            connection, f"{total} webhook requests to {connection.name} rejected in 5 minutes",
            rejections=total), "measure": total}
    return facts


def credential_expiring(now: datetime) -> Facts:
    days = max(_all_values("credential.expiring", "expiry_days"))
    soon = Connection.objects.filter(expires_at__isnull=False, expires_at__lte=now + timedelta(days=days))
    return {f"credential-expiry:{c.pk}": {**_connection_facts(
        c, f"The credential of {c.name} expires {c.expires_at:%Y-%m-%d %H:%M} UTC",
        expires_at=c.expires_at.isoformat()), "measure": c.expires_at} for c in soon}


def _all_values(event: str, name: str) -> list[Any]:
    values = [rule.params.get(name) for rule in AlertRule.objects.filter(enabled=True)
              if event in (rule.events or []) and (rule.params or {}).get(name) is not None]
    return values or [EVENT_TYPES[event].params[name]]


def outbox_backlog(now: datetime) -> Facts:
    from webhooks.models import Delivery

    minutes = _strictest("outbox.backlog", "backlog_minutes")
    waiting = Delivery.objects.filter(publish_state__in=[Delivery.PublishState.PENDING,
                                                         Delivery.PublishState.PUBLISHING],
                                      received_at__lt=now - timedelta(minutes=minutes))
    summary = waiting.aggregate(oldest=Min("received_at"), newest=Max("received_at"))
    count = waiting.count()
    if not count:
        return {}
    return {"outbox:webhooks": {"title": f"{count} webhook deliveries waiting for publication over {minutes} min",
                                "details": {"waiting": count, "oldest": summary["oldest"].isoformat()},
                                "measure": summary["oldest"]}}


def secrets_unavailable(now: datetime) -> Facts:
    """A backend is unavailable when the keyring fails its key check, or the last health check
    of a connection stored there could not read its secrets."""
    from integrations.checks import fernet_secrets_left
    from integrations.secrets.base import SecretUnavailable
    from integrations.secrets.fernet import key_check_passes, keyring

    facts: Facts = {}
    try:
        passes = key_check_passes(keyring())
    except SecretUnavailable:
        # No usable master key is a problem only while encrypted_sqlite still holds a secret
        # (with a secret manager the key is not needed once everything has moved).
        passes = False if fernet_secrets_left() else None
    if passes is False:
        facts["secrets:encrypted_sqlite"] = {"title": "The master key cannot decrypt the stored secrets",
                                             "details": {"backend": "encrypted_sqlite"}}
    failing = (Connection.objects.filter(health_last_error__startswith="secrets unavailable")
               .values_list("secret_backend", flat=True).distinct())
    for backend in failing:
        facts[f"secrets:{backend}"] = {"title": f"Secret backend {backend} is unavailable",
                                       "details": {"backend": backend}}
    return facts


def _param(rule: AlertRule, event: str, name: str) -> Any:
    value = (rule.params or {}).get(name)
    return value if value is not None else EVENT_TYPES[event].params[name]


# Each rule's own threshold, applied to what the query (run once, with the loosest) found.
ACCEPTS: dict[str, Callable[[AlertRule, dict[str, Any], datetime], bool]] = {
    "webhooks.rejections": lambda rule, facts, now: facts["measure"] > _param(
        rule, "webhooks.rejections", "rejections_per_5_minutes"),
    "credential.expiring": lambda rule, facts, now: facts["measure"] <= now + timedelta(
        days=_param(rule, "credential.expiring", "expiry_days")),
    "outbox.backlog": lambda rule, facts, now: facts["measure"] < now - timedelta(
        minutes=_param(rule, "outbox.backlog", "backlog_minutes")),
}


EVALUATORS = {
    "oauth.refresh_failing": oauth_refresh_failing,
    "webhooks.rejections": webhooks_rejections,
    "credential.expiring": credential_expiring,
    "outbox.backlog": outbox_backlog,
    "secrets.unavailable": secrets_unavailable,
}
