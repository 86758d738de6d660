"""The "Problems" card on the admin index."""
from __future__ import annotations

from django.db.models import Count
from django.http import HttpRequest
from django.urls import reverse

from notifications.models import Alert, Problem
from synthorg import permissions
from synthorg.dashboard import Card, Stat


def problems_card(request: HttpRequest) -> Card | None:
    if not permissions.allowed(getattr(request, "user", None), "problem.view"):
        return None
    changelist = reverse("admin:notifications_problem_changelist")
    by_state = dict(Problem.objects.values_list("state").annotate(n=Count("id")))
    unacknowledged = Problem.objects.filter(state=Problem.State.OPEN, acknowledged_at__isnull=True).count()
    failed = Alert.objects.filter(status=Alert.Status.FAILED).exclude(kind=Alert.Kind.TEST).count()
    stats = [
        Stat("open", by_state.get(Problem.State.OPEN, 0), f"{changelist}?state__exact=open",
             "bad" if by_state.get(Problem.State.OPEN) else "good"),
        Stat("not acknowledged", unacknowledged, f"{changelist}?state__exact=open&acknowledged=no",
             "warn" if unacknowledged else ""),
        Stat("pending", by_state.get(Problem.State.PENDING, 0), f"{changelist}?state__exact=pending"),
        Stat("resolved", by_state.get(Problem.State.RESOLVED, 0), f"{changelist}?state__exact=resolved"),
        Stat("alerts given up", failed, reverse("admin:notifications_alert_changelist") + "?status__exact=failed",
             "warn" if failed else ""),
    ]
    return Card(title="Problems", stats=stats, order=15)
