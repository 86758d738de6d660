from __future__ import annotations

from django.db.models import QuerySet

from synthorg.models import AuditEvent


def audit_event_list(*, action: str | None = None, target: str | None = None,
                     target_type: str | None = None, actor: str | None = None) -> QuerySet[AuditEvent]:
    qs = AuditEvent.objects.all()
    if action:
        qs = qs.filter(action=action)
    if target:
        qs = qs.filter(target=target)
    if target_type:
        qs = qs.filter(target_type=target_type)
    if actor:
        qs = qs.filter(actor_name=actor)
    return qs.order_by("-created_at", "-id")
