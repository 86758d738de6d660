from __future__ import annotations

from typing import Any

import pytest
from django.test import RequestFactory

from synthorg.audit import REDACTED, audit_record
from synthorg.models import AuditEvent

pytestmark = pytest.mark.django_db


def test_record_from_request_takes_actor_ip_and_request_id(operator_user: Any) -> None:
    request = RequestFactory().get("/x", REMOTE_ADDR="203.0.113.9")
    request.user = operator_user
    request.request_id = "rid-1"
    event = audit_record(action="connection.create", target="gh", target_type="connection",
                         request=request, details={"fields": ["token"]})
    event.refresh_from_db()
    assert (event.actor, event.actor_name, event.ip, event.request_id) == (operator_user, "operator", "203.0.113.9", "rid-1")
    assert event.details == {"fields": ["token"]}
    assert event.outcome == AuditEvent.Outcome.SUCCESS


def test_record_without_request_is_system() -> None:
    event = audit_record(action="token.refresh", target="app", outcome="failure", reason="invalid_grant")
    assert (event.actor_name, event.ip, event.reason) == ("system", None, "invalid_grant")


def test_secret_looking_detail_values_are_redacted() -> None:
    event = audit_record(action="x", details={"token": "ghp_canary", "nested": {"client_secret": "s3"},
                                              "secret_fields": ["token"], "value_fingerprint": "ab12"})
    assert event.details == {"token": REDACTED, "nested": {"client_secret": REDACTED},
                             "secret_fields": ["token"], "value_fingerprint": "ab12"}


def test_events_cannot_be_updated() -> None:
    event = audit_record(action="x")
    event.reason = "changed"
    with pytest.raises(TypeError):
        event.save()
    with pytest.raises(TypeError):
        AuditEvent.objects.filter(pk=event.pk).update(reason="changed")


def test_api_lists_newest_first_and_filters(operator_client: Any) -> None:
    audit_record(action="connection.create", target="a")
    audit_record(action="connection.delete", target="a")
    audit_record(action="connection.create", target="b")
    body = operator_client.get("/api/v1/audit-events").json()
    assert [r["action"] for r in body["results"]] == ["connection.create", "connection.delete", "connection.create"]
    assert body["count"] == 3
    filtered = operator_client.get("/api/v1/audit-events", {"action": "connection.create", "target": "a"}).json()
    assert [(r["action"], r["target"]) for r in filtered["results"]] == [("connection.create", "a")]


def test_api_is_staff_only(user_client: Any, api_client: Any) -> None:
    assert api_client.get("/api/v1/audit-events").status_code == 401
    response = user_client.get("/api/v1/audit-events")
    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"


def test_api_is_paginated(operator_client: Any) -> None:
    for i in range(5):
        audit_record(action="x", target=str(i))
    body = operator_client.get("/api/v1/audit-events", {"limit": 2}).json()
    assert len(body["results"]) == 2 and body["count"] == 5 and body["next"]


def test_api_is_read_only(operator_client: Any) -> None:
    assert operator_client.post("/api/v1/audit-events", {}, format="json").status_code == 405
