"""Scoped reveal: its own permission, one uniform 404, an audit event for every attempt, a per-user throttle."""
from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Permission
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from integrations import services
from integrations.models import Connection, SecretRecord
from synthorg.models import AuditEvent

pytestmark = pytest.mark.django_db

URL = "/api/v1/connections"
TOKEN = "ghp_reveal_canary_42"


def client_for(user: Any) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


def grant_reveal(user: Any) -> Any:
    user.user_permissions.add(Permission.objects.get(codename="reveal_secret",
                                                     content_type__app_label="integrations"))
    return type(user).objects.get(pk=user.pk)  # a fresh object: the permission cache is per instance


@pytest.fixture
def unthrottled(integrations_config: Any) -> None:
    integrations_config({"connections": {"reveal_rate_per_minute": 0}})


@pytest.fixture
def gh(operator_client: APIClient) -> Connection:
    response = operator_client.post(URL, {"name": "gh", "connection_type": "github",
                                       "credentials": {"token": TOKEN}}, format="json")
    assert response.status_code == 201
    return Connection.objects.get(name="gh")


@pytest.fixture
def revealer(django_user_model: Any) -> Any:
    return grant_reveal(django_user_model.objects.create_user(username="auditor", password="pw-auditor-123"))


@pytest.fixture
def reveal_client(revealer: Any) -> APIClient:
    return client_for(revealer)


def reveals() -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action="secret.reveal").order_by("id"))


def test_reveal_returns_the_value_uncached_and_audits_a_fingerprint(
    unthrottled: None, gh: Connection, reveal_client: APIClient,
) -> None:
    response = reveal_client.get(f"{URL}/gh/secrets/token", HTTP_X_REQUEST_ID="req-reveal-1",
                                 REMOTE_ADDR="198.51.100.7")
    assert response.status_code == 200
    assert response.json() == {"field": "token", "value": TOKEN}
    assert response["Cache-Control"] == "no-store"
    [event] = reveals()
    assert (event.outcome, event.reason, event.target, event.actor_name) == ("success", "", "gh", "auditor")
    assert event.ip == "198.51.100.7" and event.request_id == "req-reveal-1"
    assert event.details == {"field": "token", "value_fingerprint": services.reveal_fingerprint(TOKEN)}
    assert TOKEN not in str(event.details) and TOKEN not in event.reason
    # The fingerprint confirms a candidate value, and only that value.
    assert services.reveal_fingerprint(TOKEN) != services.reveal_fingerprint(TOKEN + "x")


def test_staff_without_the_permission_cannot_reveal(unthrottled: None, gh: Connection,
                                                    operator_client: APIClient) -> None:
    assert operator_client.get(f"{URL}/gh/secrets/token").status_code == 404
    [event] = reveals()
    assert (event.outcome, event.reason, event.actor_name) == ("denied", "permission", "operator")


def test_anonymous_is_refused_before_anything(unthrottled: None, gh: Connection, api_client: APIClient) -> None:
    assert api_client.get(f"{URL}/gh/secrets/token").status_code in (401, 403)


def _corrupt(connection: Connection) -> None:
    SecretRecord.objects.filter(pk=connection.secret_id).update(ciphertext="gAAAAAcorrupt")


CASES = [
    # (path, how to break it, audit reason)
    ("nope/secrets/token", None, "unknown_connection"),
    ("gh/secrets/signing_secret", None, "field_not_set"),
    ("gh/secrets/api_url", None, "not_a_secret_field"),
    ("gh/secrets/password", None, "not_a_secret_field"),
    ("gh/secrets/token", _corrupt, "backend_failure:secret_decrypt_failed"),
]


@pytest.mark.parametrize(("path", "breaker", "reason"), CASES, ids=[c[2] for c in CASES])
def test_every_failure_is_the_same_404_and_is_audited(
    unthrottled: None, gh: Connection, reveal_client: APIClient, path: str, breaker: Any, reason: str,
) -> None:
    if breaker:
        breaker(gh)
    response = reveal_client.get(f"{URL}/{path}", HTTP_X_REQUEST_ID="req-fail-1")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not found.", "code": "not_found"}
    assert "Cache-Control" not in response or "gh" not in response["Cache-Control"]
    [event] = reveals()
    assert (event.outcome, event.reason, event.actor_name, event.request_id) == (
        "failure", reason, "auditor", "req-fail-1")
    assert event.details == {"field": path.rsplit("/", 1)[1]}


def test_uniform_404_bodies_are_identical_including_missing_permission(
    unthrottled: None, gh: Connection, reveal_client: APIClient, user_client: APIClient,
) -> None:
    bodies = {reveal_client.get(f"{URL}/{path}").content for path, _, _ in CASES[:4]}
    bodies.add(user_client.get(f"{URL}/gh/secrets/token").content)
    assert len(bodies) == 1
    assert [e.reason for e in reveals()][-1] == "permission"


def test_reveal_name_lookup_is_case_insensitive(unthrottled: None, gh: Connection,
                                                reveal_client: APIClient) -> None:
    assert reveal_client.get(f"{URL}/GH/secrets/token").json()["value"] == TOKEN


def test_throttle_is_per_user_with_retry_after(
    integrations_config: Any, gh: Connection, reveal_client: APIClient, django_user_model: Any,
) -> None:
    integrations_config({"connections": {"reveal_rate_per_minute": 2}})
    assert reveal_client.get(f"{URL}/gh/secrets/token").status_code == 200
    assert reveal_client.get(f"{URL}/gh/secrets/token").status_code == 200
    refused = reveal_client.get(f"{URL}/gh/secrets/token")
    assert refused.status_code == 429
    assert int(refused["Retry-After"]) >= 1
    assert TOKEN not in refused.content.decode()
    assert [(e.outcome, e.reason) for e in reveals()] == [("success", ""), ("success", ""),
                                                          ("denied", "throttled")]
    other = grant_reveal(django_user_model.objects.create_user(username="other", password="pw-other-123"))
    assert client_for(other).get(f"{URL}/gh/secrets/token").status_code == 200


def test_throttle_counts_failed_attempts_too(integrations_config: Any, gh: Connection,
                                            reveal_client: APIClient) -> None:
    # Otherwise probing for names would be free.
    integrations_config({"connections": {"reveal_rate_per_minute": 1}})
    assert reveal_client.get(f"{URL}/nope/secrets/token").status_code == 404
    assert reveal_client.get(f"{URL}/gh/secrets/token").status_code == 429


def test_zero_rate_means_unlimited(unthrottled: None, gh: Connection, reveal_client: APIClient) -> None:
    statuses = {reveal_client.get(f"{URL}/gh/secrets/token").status_code for _ in range(15)}
    assert statuses == {200}


def test_reveal_after_update_returns_the_new_value(unthrottled: None, gh: Connection, operator_client: APIClient,
                                                   reveal_client: APIClient) -> None:
    operator_client.patch(f"{URL}/gh", {"credentials": {"token": "tok-new"}}, format="json")
    assert reveal_client.get(f"{URL}/gh/secrets/token").json()["value"] == "tok-new"


@pytest.mark.parametrize(("path", "target", "field"), [
    ("%C2%AA/secrets/%C2%AA", "'\\xaa'", "'\\xaa'"),
])
def test_unstorable_path_values_are_404_and_audited_escaped(
    unthrottled: None, gh: Connection, reveal_client: APIClient, path: str, target: str, field: str,
) -> None:
    response = reveal_client.get(f"{URL}/{path}")
    assert response.status_code == 404 and response.json() == {"detail": "Not found.", "code": "not_found"}
    [event] = reveals()
    assert (event.target, event.details["field"], event.outcome) == (target, field, "failure")


@pytest.mark.parametrize("path", ["a%00b/secrets/token", "gh/secrets/t%00k"])
def test_nul_in_reveal_path_is_the_same_404_before_routing(
    unthrottled: None, gh: Connection, reveal_client: APIClient, path: str,
) -> None:
    # synthorg.middleware.NulCharacterMiddleware answers before any view (and so before the audit).
    response = reveal_client.get(f"{URL}/{path}")
    assert response.status_code == 404 and response.json() == {"detail": "Not found.", "code": "not_found"}
    assert reveals() == []
