"""Brute-force protection of both logins (issue 12 §3: 300 wrong passwords were accepted
without slowing down, then the right one worked) and an audit event per failed login."""
from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from synthorg.models import AuditEvent

pytestmark = pytest.mark.django_db

TOKEN_URL = "/api/v1/auth/token"
LOGIN_URL = "/admin/login/?next=/admin/"
PASSWORD = "the-right-password-0451"
WRONG = "wrong-password-"


@pytest.fixture
def operator(django_user_model: Any) -> Any:
    return django_user_model.objects.create_superuser(username="op", password=PASSWORD, email="")


def _token(client: APIClient, password: str, username: str = "op") -> Any:
    return client.post(TOKEN_URL, {"username": username, "password": password}, format="json")


def _admin_login(client: Client, password: str, username: str = "op") -> Any:
    return client.post(LOGIN_URL, {"username": username, "password": password})


def _cool_off_passes() -> None:
    """Move every recorded failure back past the cool-off, as if that much time went by."""
    AccessAttempt.objects.update(attempt_time=timezone.now() - settings.AXES_COOLOFF_TIME - timedelta(seconds=1))


def test_300_wrong_passwords_lock_the_api_login_and_the_right_one_is_refused(operator: Any) -> None:
    client = APIClient(REMOTE_ADDR="198.51.100.7")
    limit = settings.AXES_FAILURE_LIMIT

    statuses = [_token(client, f"{WRONG}{i}").status_code for i in range(300)]
    locked = _token(client, PASSWORD)

    assert statuses[:limit - 1] == [400] * (limit - 1)
    assert set(statuses[limit:]) == {429}
    assert locked.status_code == 429
    body = locked.json()
    assert body["code"] == "login_locked_out" and "Too many failed logins" in body["detail"]
    assert int(locked["Retry-After"]) > 0
    assert "token" not in body


def test_every_failed_login_is_audited_without_the_password(operator: Any) -> None:
    client = APIClient(REMOTE_ADDR="198.51.100.8")
    limit = settings.AXES_FAILURE_LIMIT

    for i in range(limit + 2):
        _token(client, f"{WRONG}{i}")

    events = list(AuditEvent.objects.filter(action="auth.login_failed").order_by("id"))
    assert len(events) == limit + 2
    assert {(e.target, e.ip, e.details["via"]) for e in events} == {("op", "198.51.100.8", "api")}
    assert [e.reason for e in events[:limit - 1]] == ["bad_credentials"] * (limit - 1)
    assert events[-1].reason == "locked_out" and events[-1].outcome == "denied"
    stored = " ".join(f"{e.target} {e.reason} {e.details}" for e in events)
    assert WRONG not in stored and PASSWORD not in stored


def test_the_right_password_works_again_after_the_cool_off(operator: Any) -> None:
    client = APIClient(REMOTE_ADDR="198.51.100.9")
    for i in range(settings.AXES_FAILURE_LIMIT):
        _token(client, f"{WRONG}{i}")
    assert _token(client, PASSWORD).status_code == 429

    _cool_off_passes()

    response = _token(client, PASSWORD)
    assert response.status_code == 200 and response.json()["token"]


def test_the_lockout_is_per_username_and_address(operator: Any, django_user_model: Any) -> None:
    django_user_model.objects.create_user(username="other", password=PASSWORD)
    attacker = APIClient(REMOTE_ADDR="203.0.113.66")
    for i in range(settings.AXES_FAILURE_LIMIT):
        _token(attacker, f"{WRONG}{i}")

    # Nobody can lock the operator out from elsewhere by typing wrong passwords for that name.
    assert _token(APIClient(REMOTE_ADDR="198.51.100.10"), PASSWORD).status_code == 200
    assert _token(attacker, PASSWORD, username="other").status_code == 200
    assert _token(attacker, PASSWORD).status_code == 429


def test_admin_login_is_locked_out_too_and_audited(operator: Any) -> None:
    client = Client(REMOTE_ADDR="198.51.100.11")
    limit = settings.AXES_FAILURE_LIMIT

    first = _admin_login(client, f"{WRONG}0")
    for i in range(1, limit + 3):
        _admin_login(client, f"{WRONG}{i}")
    locked = _admin_login(client, PASSWORD)

    assert first.status_code == 200  # the login form again, with its error
    assert locked.status_code == 429
    assert "Too many failed logins" in locked.content.decode()
    assert "_auth_user_id" not in client.session
    events = AuditEvent.objects.filter(action="auth.login_failed", target="op")
    assert events.count() == limit + 4
    assert {e.details["via"] for e in events} == {"admin"}


def test_admin_and_api_share_one_count(operator: Any) -> None:
    address = "198.51.100.12"
    limit = settings.AXES_FAILURE_LIMIT
    for i in range(limit):
        _admin_login(Client(REMOTE_ADDR=address), f"{WRONG}{i}")

    assert _token(APIClient(REMOTE_ADDR=address), PASSWORD).status_code == 429


def test_a_success_resets_the_count(operator: Any) -> None:
    client = APIClient(REMOTE_ADDR="198.51.100.13")
    limit = settings.AXES_FAILURE_LIMIT
    for i in range(limit - 1):
        _token(client, f"{WRONG}{i}")
    assert _token(client, PASSWORD).status_code == 200

    for i in range(limit - 1):
        assert _token(client, f"{WRONG}{i}").status_code == 400
    assert _token(client, PASSWORD).status_code == 200


def test_successful_logins_write_no_failure_event(operator: Any) -> None:
    assert _token(APIClient(), PASSWORD).status_code == 200
    assert _admin_login(Client(), PASSWORD).status_code == 302

    assert not AuditEvent.objects.filter(action="auth.login_failed").exists()
