"""`manage.py rotate_master_key`: counts, idempotent, resumable, end to end with a real key change."""
from __future__ import annotations

import io
import os
from typing import Any

import pytest
from cryptography.fernet import Fernet, MultiFernet
from django.core.management import call_command
from django.core.management.base import CommandError

from integrations import services
from integrations.models import Connection, KeyCheck, SecretRecord
from integrations.secrets.fernet import key_check_passes, key_fingerprint, keyring
from synthorg.models import AuditEvent

pytestmark = pytest.mark.django_db

OLD_KEY = os.environ["SYNTHORG_MASTER_KEY"]
NEW_KEY = Fernet.generate_key().decode()


def rotate(*args: str) -> str:
    out = io.StringIO()
    call_command("rotate_master_key", *args, stdout=out)
    return out.getvalue()


def counts(output: str) -> dict[str, int]:
    pairs = (line.split(": ") for line in output.splitlines() if ": " in line)
    return {key: int(value) for key, value in pairs if value.isdigit()}


@pytest.fixture
def three_connections() -> list[Connection]:
    return [services.connection_create(name=f"gh-{i}", connection_type="github",
                                       credentials={"token": f"ghp_rotate_{i}"}) for i in range(3)]


@pytest.fixture
def new_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNTHORG_MASTER_KEY", NEW_KEY)
    monkeypatch.setenv("SYNTHORG_PREVIOUS_MASTER_KEYS", OLD_KEY)


def test_rotate_reencrypts_everything_under_new_key(three_connections: list[Connection], new_key: None,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    output = rotate()
    assert counts(output) == {"rotated": 3, "already current": 0, "failed": 0}
    current = key_fingerprint(Fernet(NEW_KEY.encode()))
    assert set(SecretRecord.objects.values_list("key_id", flat=True)) == {current}
    assert KeyCheck.objects.get().key_id == current
    # The old key can go now: everything reads with the new key alone.
    monkeypatch.delenv("SYNTHORG_PREVIOUS_MASTER_KEYS")
    assert key_check_passes(keyring()) is True
    assert [services.connection_secrets(c) for c in three_connections] == [
        {"token": f"ghp_rotate_{i}"} for i in range(3)]
    event = AuditEvent.objects.get(action="master_key.rotate")
    assert event.actor_name == "manage.py rotate_master_key"
    assert event.details["rotated"] == 3 and event.outcome == "success"


def test_rotate_twice_changes_nothing_the_second_time(three_connections: list[Connection], new_key: None) -> None:
    rotate()
    before = dict(SecretRecord.objects.values_list("pk", "ciphertext"))
    assert counts(rotate()) == {"rotated": 0, "already current": 3, "failed": 0}
    assert dict(SecretRecord.objects.values_list("pk", "ciphertext")) == before


def test_rotate_resumes_after_interruption(three_connections: list[Connection], new_key: None,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    real_rotate = MultiFernet.rotate
    calls: list[int] = []

    def rotate_then_die(self: MultiFernet, token: bytes) -> bytes:
        calls.append(1)
        if len(calls) > 1:
            raise KeyboardInterrupt  # the operator's ^C in the middle of the second batch
        return real_rotate(self, token)

    monkeypatch.setattr(MultiFernet, "rotate", rotate_then_die)
    with pytest.raises(KeyboardInterrupt):
        rotate("--batch-size", "1")
    monkeypatch.setattr(MultiFernet, "rotate", real_rotate)
    # The first batch committed; the rerun does only what is left.
    assert counts(rotate("--batch-size", "1")) == {"rotated": 2, "already current": 1, "failed": 0}


def test_rotate_counts_undecryptable_records_and_fails(three_connections: list[Connection], new_key: None) -> None:
    foreign = Fernet(Fernet.generate_key()).encrypt(b'{"token": "x"}').decode()
    SecretRecord.objects.filter(connection=three_connections[0]).update(ciphertext=foreign)
    out = io.StringIO()
    with pytest.raises(CommandError, match="1 secret record"):
        call_command("rotate_master_key", stdout=out)
    assert counts(out.getvalue()) == {"rotated": 2, "already current": 0, "failed": 1}
    assert AuditEvent.objects.get(action="master_key.rotate").outcome == "failure"


def test_rotate_with_nothing_stored_reports_zero() -> None:
    assert counts(rotate()) == {"rotated": 0, "already current": 0, "failed": 0}


def test_rotate_without_master_key_fails_clearly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SYNTHORG_MASTER_KEY")
    with pytest.raises(CommandError, match="SYNTHORG_MASTER_KEY is not set"):
        rotate()


def test_rotate_rejects_bad_batch_size() -> None:
    with pytest.raises(CommandError, match="batch-size"):
        rotate("--batch-size", "0")


def test_rotate_honours_master_key_env_setting(three_connections: list[Connection], integrations_config: Any,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    integrations_config({"secret_backend": {"master_key_env": "OTHER_MASTER_KEY"}})
    monkeypatch.setenv("OTHER_MASTER_KEY", NEW_KEY)
    monkeypatch.setenv("SYNTHORG_PREVIOUS_MASTER_KEYS", OLD_KEY)
    assert counts(rotate())["rotated"] == 3
