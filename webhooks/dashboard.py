"""The admin index card for webhooks: the last hour's deliveries by outcome, rejections, failed runs."""
from __future__ import annotations

from datetime import timedelta

from django.db.models import Count, Sum
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone

from synthorg.dashboard import Card, Stat
from webhooks.models import Delivery, RejectionCount, WorkflowRun

WINDOW = timedelta(hours=1)


def webhooks_card(request: HttpRequest) -> Card:
    since = timezone.now() - WINDOW
    deliveries = reverse("admin:webhooks_delivery_changelist")
    by_outcome = dict(Delivery.objects.filter(received_at__gte=since).values_list("outcome")
                      .annotate(n=Count("id")))
    stats = [Stat(f"{outcome.label.lower()} (last hour)", by_outcome.get(outcome.value, 0),
                  f"{deliveries}?received=1h&outcome__exact={outcome.value}",
                  "warn" if outcome == Delivery.Outcome.ACCEPTED_UNVERIFIED and by_outcome.get(outcome.value) else "")
             for outcome in Delivery.Outcome]
    rejected = RejectionCount.objects.filter(minute__gte=since).aggregate(n=Sum("count"))["n"] or 0
    stats.append(Stat("rejected (last hour)", rejected,
                      f"{reverse('admin:webhooks_rejectioncount_changelist')}?received=1h", "bad" if rejected else ""))
    runs = reverse("admin:webhooks_workflowrun_changelist")
    failed = WorkflowRun.objects.filter(status=WorkflowRun.Status.FAILED).count()
    stats.append(Stat("failed workflow runs", failed, f"{runs}?status__exact=failed", "bad" if failed else ""))
    return Card(title="Webhooks", stats=stats, order=30)
