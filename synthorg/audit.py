"""`audit_record()`: the one way anything writes to the audit log.

Callers pass what happened; the request (when there is one) supplies actor, ip and
request id. ``details`` must never hold a secret value: keys that look like secrets are
replaced by a marker as a last line of defence, not as the primary control.
"""
from __future__ import annotations

import re
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.http import HttpRequest

from synthorg.client_address import client_address
from synthorg.middleware import current_request_id
from synthorg.models import AuditEvent

_SECRET_LOOKING = re.compile(r"(secret|token|password|passwd|api_?key|private|credential)", re.I)
_SAFE_SUFFIXES = ("_fields", "_field", "_names", "_name", "_env", "_fingerprint", "_type", "_version")
REDACTED = "[redacted]"


def _scrub(value: Any, key: str = "") -> Any:
    if isinstance(value, dict):
        return {k: _scrub(v, str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_scrub(v, key) for v in value]
    if key and _SECRET_LOOKING.search(key) and not key.endswith(_SAFE_SUFFIXES) and isinstance(value, str):
        return REDACTED
    return value


def client_ip(request: HttpRequest | None) -> str | None:
    if request is None:
        return None
    # The same client as the receiver's flood guard sees (trusted proxies only).
    return client_address(request.META)


def audit_record(
    *,
    action: str,
    target: str = "",
    target_type: str = "",
    outcome: str = AuditEvent.Outcome.SUCCESS,
    reason: str = "",
    actor: AbstractBaseUser | AnonymousUser | str | None = None,
    request: HttpRequest | None = None,
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    if actor is None and request is not None:
        actor = getattr(request, "user", None)
    user = actor if isinstance(actor, AbstractBaseUser) else None
    if user is not None:
        actor_name = user.get_username()
    elif isinstance(actor, str) and actor:
        actor_name = actor
    elif isinstance(actor, AnonymousUser):
        actor_name = "anonymous"
    else:
        actor_name = "system"
    request_id = getattr(request, "request_id", None) or current_request_id() or ""
    return AuditEvent.objects.create(
        actor=user,
        actor_name=actor_name[:150],
        action=action,
        target_type=target_type,
        target=target[:255],
        outcome=outcome,
        reason=reason[:255],
        ip=client_ip(request),
        request_id=request_id,
        details=_scrub(details or {}),
    )
