"""Master key rotation end to end: previous keys decrypt, master_key_rotate re-encrypts idempotently and resumably."""
from __future__ import annotations

from typing import Any

import pytest
from cryptography.fernet import Fernet, MultiFernet
from django.contrib.auth.models import Permission
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from integrations import services
from integrations.checks import check_secret_backend
from integrations.models import Connection, KeyCheck, SecretRecord
from integrations.secrets.base import SecretUnavailable
from integrations.secrets.fernet import key_fingerprint
from synthorg.models import AuditEvent

pytestmark = pytest.mark.django_db

KEY_A = "qbYj6U5c3rSRlFqbpNHXHw0fyV0TGCkZjmdYk1t1l0A="  # tests/settings.py's key
KEY_B = Fernet.generate_key().decode()
FP_A = key_fingerprint(Fernet(KEY_A.encode()))
FP_B = key_fingerprint(Fernet(KEY_B.encode()))


@pytest.fixture
def four() -> list[Connection]:
    return [services.connection_create(name=f"gh{i}", connection_type="github", credentials={"token": f"tok-{i}"})
            for i in range(4)]


def secrets(connections: list[Connection]) -> list[dict[str, str]]:
    return [services.connection_secrets(Connection.objects.get(pk=c.pk)) for c in connections]


def key_ids() -> set[str]:
    return set(SecretRecord.objects.values_list("key_id", flat=True))


def start_rotation(monkeypatch: pytest.MonkeyPatch) -> None:
    """The operator's step 1: new key current, old key moved to the previous-keys variable."""
    monkeypatch.setenv("SYNTHORG_MASTER_KEY", KEY_B)
    monkeypatch.setenv("SYNTHORG_PREVIOUS_MASTER_KEYS", KEY_A)


def test_rotation_end_to_end(monkeypatch: pytest.MonkeyPatch, four: list[Connection], operator_user: Any) -> None:
    expected = [{"token": f"tok-{i}"} for i in range(4)]
    assert key_ids() == {FP_A}
    start_rotation(monkeypatch)
    assert secrets(four) == expected  # old ciphertext still reads through MultiFernet
    assert check_secret_backend() == []
    # A write during the rotation window already uses the new key.
    services.connection_create(name="late", connection_type="slack", credentials={"token": "xoxb-late"})

    report = services.master_key_rotate(actor=operator_user)
    assert (report.rotated, report.already_current, report.failed) == (4, 1, 0)
    assert key_ids() == {FP_B} and KeyCheck.objects.get().key_id == FP_B

    monkeypatch.delenv("SYNTHORG_PREVIOUS_MASTER_KEYS")  # step 3: the old key is gone
    assert secrets(four) == expected
    assert check_secret_backend() == []
    event = AuditEvent.objects.get(action="master_key.rotate")
    assert event.outcome == "success" and event.actor_name == "operator"
    assert {k: event.details[k] for k in ("rotated", "already_current", "failed", "key_id")} == {
        "rotated": 4, "already_current": 1, "failed": 0, "key_id": FP_B}
    assert event.details["by_owner"]["connections"] == {"rotated": 4, "already_current": 1, "failed": 0}
    assert KEY_A not in str(event.details) and KEY_B not in str(event.details)


def test_second_run_is_a_noop(monkeypatch: pytest.MonkeyPatch, four: list[Connection]) -> None:
    start_rotation(monkeypatch)
    services.master_key_rotate()
    ciphertexts = dict(SecretRecord.objects.values_list("pk", "ciphertext"))
    report = services.master_key_rotate()
    assert (report.rotated, report.already_current, report.failed) == (0, 4, 0)
    assert dict(SecretRecord.objects.values_list("pk", "ciphertext")) == ciphertexts
    assert AuditEvent.objects.filter(action="master_key.rotate").count() == 2


def test_rotation_resumes_after_a_partial_run(monkeypatch: pytest.MonkeyPatch, four: list[Connection]) -> None:
    start_rotation(monkeypatch)
    real_rotate = MultiFernet.rotate
    calls = {"n": 0}

    def dies_on_third(self: MultiFernet, token: bytes) -> bytes:
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # the process is killed half way
        return real_rotate(self, token)

    monkeypatch.setattr(MultiFernet, "rotate", dies_on_third)
    with pytest.raises(KeyboardInterrupt):
        services.master_key_rotate(batch_size=2)
    # The first batch is committed; the interrupted one rolled back whole.
    assert sorted(SecretRecord.objects.values_list("key_id", flat=True)) == sorted([FP_A, FP_A, FP_B, FP_B])
    monkeypatch.setattr(MultiFernet, "rotate", real_rotate)
    report = services.master_key_rotate(batch_size=2)
    assert (report.rotated, report.already_current, report.failed) == (2, 2, 0)
    monkeypatch.delenv("SYNTHORG_PREVIOUS_MASTER_KEYS")
    assert secrets(four) == [{"token": f"tok-{i}"} for i in range(4)]


def test_unreadable_rows_are_counted_and_left_alone(monkeypatch: pytest.MonkeyPatch,
                                                   four: list[Connection]) -> None:
    SecretRecord.objects.filter(pk=four[0].secret_id).update(ciphertext="corrupt")
    start_rotation(monkeypatch)
    report = services.master_key_rotate(batch_size=1)
    assert (report.rotated, report.failed) == (3, 1)
    assert SecretRecord.objects.get(pk=four[0].secret_id).ciphertext == "corrupt"
    event = AuditEvent.objects.get(action="master_key.rotate")
    assert event.outcome == "failure" and "1 records could not be decrypted" in event.reason
    assert services.master_key_rotate().failed == 1  # and a rerun terminates, reporting it again
    with pytest.raises(SecretUnavailable):
        services.connection_secrets(Connection.objects.get(pk=four[0].pk))


def test_without_the_previous_key_rotation_fails_loudly(monkeypatch: pytest.MonkeyPatch,
                                                       four: list[Connection]) -> None:
    monkeypatch.setenv("SYNTHORG_MASTER_KEY", KEY_B)  # forgot SYNTHORG_PREVIOUS_MASTER_KEYS
    report = services.master_key_rotate()
    assert (report.rotated, report.failed) == (0, 4)
    assert key_ids() == {FP_A}


def test_reveal_works_across_a_rotation(monkeypatch: pytest.MonkeyPatch, four: list[Connection], user: Any,
                                        integrations_config: Any) -> None:
    integrations_config({"connections": {"reveal_rate_per_minute": 0}})
    user.user_permissions.add(Permission.objects.get(codename="reveal_secret"))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    start_rotation(monkeypatch)
    services.master_key_rotate()
    monkeypatch.delenv("SYNTHORG_PREVIOUS_MASTER_KEYS")
    assert client.get("/api/v1/connections/gh2/secrets/token").json()["value"] == "tok-2"
