"""What an alert says: one `Message` rendered for every sink kind (text, HTML, JSON event)."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.template.loader import render_to_string
from django.urls import reverse

from notifications.models import Alert, Problem

EVENT_TYPE_PREFIX = "problem"


def console_url(path: str) -> str:
    """An absolute console link when SYNTHORG_PUBLIC_URL is set, else the path alone."""
    return f"{settings.SYNTHORG_PUBLIC_URL or ''}{path}"


def problem_url(problem: Problem) -> str:
    return console_url(reverse("admin:notifications_problem_change", args=[problem.pk]))


def problems_url() -> str:
    return console_url(reverse("admin:notifications_problem_changelist"))


def problem_document(problem: Problem) -> dict[str, Any]:
    """The JSON shape of a problem in alert payloads and the API (never a secret)."""
    def iso(value: datetime | None) -> str | None:
        return value.isoformat() if value else None

    return {"id": problem.pk, "event": problem.event, "subject": problem.subject, "title": problem.title,
            "state": problem.state, "rule": problem.rule.name, "connection": problem.connection_name or None,
            "first_seen_at": iso(problem.first_seen_at), "opened_at": iso(problem.opened_at),
            "resolved_at": iso(problem.resolved_at), "acknowledged_at": iso(problem.acknowledged_at),
            "details": problem.details, "url": problem_url(problem)}


@dataclass(frozen=True)
class Message:
    alert_id: str
    kind: str
    event_type: str  # problem.opened | problem.resolved | problem.reminder | problem.digest | test
    subject: str
    text: str
    html: str
    url: str
    payload: dict[str, Any]
    problems: list[Problem] = field(default_factory=list)


_VERBS = {Alert.Kind.OPENED: "Problem", Alert.Kind.RESOLVED: "Resolved", Alert.Kind.REMINDER: "Still open"}


def message_build(alert: Alert, *, problems: list[Problem], now: datetime) -> Message:
    alert_id = str(alert.id)
    if alert.kind == Alert.Kind.TEST:
        subject = f"[SynthOrg] Test alert from sink {alert.sink.name}"
        intro = "This is a test alert: the sink works."
        url, event_type = problems_url(), "test"
    elif alert.kind == Alert.Kind.DIGEST:
        opened = sum(1 for p in problems if p.state != Problem.State.RESOLVED)
        subject = f"[SynthOrg] {len(problems)} problems changed ({opened} open)"
        intro = f"{len(problems)} problems changed at about the same time; one message instead of {len(problems)}."
        url, event_type = problems_url(), f"{EVENT_TYPE_PREFIX}.digest"
    else:
        problem = problems[0]
        subject = f"[SynthOrg] {_VERBS.get(alert.kind, alert.kind)}: {problem.title}"
        intro = {Alert.Kind.OPENED: "A problem was opened.", Alert.Kind.RESOLVED: "The problem is resolved.",
                 Alert.Kind.REMINDER: "The problem is still open and nobody acknowledged it."}[alert.kind]
        url, event_type = problem_url(problem), f"{EVENT_TYPE_PREFIX}.{alert.kind}"
    documents = [problem_document(p) for p in problems]
    data: dict[str, Any] = {"problems": documents} if alert.kind == Alert.Kind.DIGEST else (
        {"problem": documents[0]} if documents else {"sink": alert.sink.name})
    payload = {"type": event_type, "id": alert_id, "timestamp": now.isoformat(), "data": data}
    # The mail shows times as people read them; the JSON payload keeps ISO 8601.
    shown = [{**doc, "first_seen_at": f"{p.first_seen_at:%Y-%m-%d %H:%M} UTC",
              "resolved_at": f"{p.resolved_at:%Y-%m-%d %H:%M} UTC" if p.resolved_at else None}
             for doc, p in zip(documents, problems, strict=True)]
    context = {"subject": subject, "intro": intro, "problems": shown, "url": url, "alert_id": alert_id}
    text = render_to_string("notifications/alert.txt", context)
    html = render_to_string("notifications/alert.html", context)
    return Message(alert_id=alert_id, kind=alert.kind, event_type=event_type, subject=subject[:250], text=text,
                   html=html, url=url, payload=payload, problems=problems)
