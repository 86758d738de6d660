"""Reads: the activity log of a connection, rules and runs."""
from __future__ import annotations

from typing import Any

from django.db.models import Count, QuerySet

from integrations.models import Connection
from webhooks.models import Delivery, ReceiptSample, TriggerRule, WorkflowRun


def delivery_activity(*, connection: Connection, limit: int = 100,
                      include_payload: bool = False) -> list[dict[str, Any]]:
    """Newest first: accepted deliveries with their run counts, and the sampled rejections and
    duplicates (reasons only, never bodies)."""
    deliveries = Delivery.objects.filter(connection=connection).annotate(run_count=Count("runs"))
    deliveries = deliveries.defer("body") if include_payload else deliveries.defer("payload", "body", "headers")
    deliveries = deliveries.order_by("-received_at", "-id")[:limit]
    entries: list[dict[str, Any]] = []
    for delivery in deliveries:
        entry = {
            "delivery_id": delivery.pk, "event_id": str(delivery.event_id), "event_type": delivery.event_type,
            "outcome": delivery.outcome, "reason": "", "matched_secret": delivery.matched_secret,
            "duplicates": delivery.duplicates, "received_at": delivery.received_at,
            "published_at": delivery.published_at, "runs": delivery.run_count,
        }
        if include_payload:
            entry["payload"] = delivery.payload
        entries.append(entry)
    samples = ReceiptSample.objects.filter(connection=connection).order_by("-received_at", "-id")[:limit]
    for sample in samples:
        entries.append({
            "delivery_id": sample.delivery_id, "event_id": None, "event_type": sample.path_event_type,
            "outcome": sample.outcome, "reason": sample.reason, "matched_secret": "", "duplicates": 0,
            "received_at": sample.received_at, "published_at": None, "runs": 0,
        })
    entries.sort(key=lambda e: e["received_at"], reverse=True)
    return entries[:limit]


def trigger_rule_list() -> QuerySet[TriggerRule]:
    return TriggerRule.objects.select_related("connection").order_by("name")


def workflow_run_list(*, rule: str | None = None, status: str | None = None,
                      connection: str | None = None) -> QuerySet[WorkflowRun]:
    runs = WorkflowRun.objects.order_by("-created_at", "-id")
    if rule:
        runs = runs.filter(rule_name=rule)
    if status:
        runs = runs.filter(status=status)
    if connection:
        runs = runs.filter(connection_name__iexact=connection)
    return runs
