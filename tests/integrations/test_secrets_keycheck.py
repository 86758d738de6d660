"""Startup refuses a keyring that cannot decrypt the stored key-check value, and other key problems."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from django.core import checks

from integrations.checks import check_secret_backend
from integrations.models import KeyCheck
from integrations.secrets.fernet import encrypt
from synthorg.startup import check_or_exit

ROOT = Path(__file__).resolve().parents[2]
KEY_A = "qbYj6U5c3rSRlFqbpNHXHw0fyV0TGCkZjmdYk1t1l0A="  # tests/settings.py's key
KEY_B = Fernet.generate_key().decode()


def ids(messages: list[checks.CheckMessage]) -> list[str]:
    return [m.id for m in messages]


@pytest.mark.django_db
def test_fresh_database_without_key_check_passes() -> None:
    assert not KeyCheck.objects.exists()
    assert check_secret_backend() == []


@pytest.mark.django_db
def test_matching_key_passes() -> None:
    encrypt({"a": "b"})
    assert KeyCheck.objects.exists()
    assert check_secret_backend() == []


@pytest.mark.django_db
def test_wrong_key_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    encrypt({"a": "b"})
    monkeypatch.setenv("SYNTHORG_MASTER_KEY", KEY_B)
    [error] = check_secret_backend()
    assert error.id == "integrations.E003" and error.level == checks.ERROR
    assert "cannot decrypt the stored key-check value" in error.msg and "SYNTHORG_MASTER_KEY" in error.msg
    assert "SYNTHORG_PREVIOUS_MASTER_KEYS" in error.hint
    assert KEY_A not in error.msg + error.hint and KEY_B not in error.msg + error.hint


@pytest.mark.django_db
def test_old_key_among_previous_keys_passes(monkeypatch: pytest.MonkeyPatch) -> None:
    encrypt({"a": "b"})
    monkeypatch.setenv("SYNTHORG_MASTER_KEY", KEY_B)
    monkeypatch.setenv("SYNTHORG_PREVIOUS_MASTER_KEYS", f"{Fernet.generate_key().decode()},{KEY_A}")
    assert check_secret_backend() == []


@pytest.mark.django_db
def test_corrupt_key_check_is_an_error() -> None:
    encrypt({"a": "b"})
    KeyCheck.objects.update(ciphertext=Fernet(KEY_B.encode()).encrypt(b"x").decode())
    assert ids(check_secret_backend()) == ["integrations.E003"]


@pytest.mark.django_db
def test_check_or_exit_stops_startup_on_a_wrong_key(monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    encrypt({"a": "b"})
    monkeypatch.setenv("SYNTHORG_MASTER_KEY", KEY_B)
    with pytest.raises(SystemExit) as caught:
        check_or_exit()
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert "synthorg: integrations.E003: " in err and "Traceback" not in err


@pytest.mark.django_db
def test_check_or_exit_passes_with_the_right_key() -> None:
    encrypt({"a": "b"})
    check_or_exit()  # no SystemExit


def test_without_database_access_the_other_checks_still_run() -> None:
    # No django_db mark: database access is blocked, the key check is skipped, nothing crashes.
    assert check_secret_backend() == []


@pytest.mark.parametrize(("env", "expected"), [
    ({"SYNTHORG_MASTER_KEY": None}, "integrations.E001"),
    ({"SYNTHORG_MASTER_KEY": "not-a-key"}, "integrations.E001"),
    ({"SYNTHORG_PREVIOUS_MASTER_KEYS": "bad"}, "integrations.E001"),
])
def test_missing_or_malformed_keys_are_errors(monkeypatch: pytest.MonkeyPatch, env: dict[str, str | None],
                                              expected: str) -> None:
    for name, value in env.items():
        if value is None:
            monkeypatch.delenv(name)
        else:
            monkeypatch.setenv(name, value)
    [error] = check_secret_backend()
    assert error.id == expected and error.level == checks.ERROR
    assert "generate one with" in error.msg


def test_env_var_backend_makes_a_missing_key_a_warning(monkeypatch: pytest.MonkeyPatch,
                                                       integrations_config: Any) -> None:
    monkeypatch.delenv("SYNTHORG_MASTER_KEY")
    integrations_config({"secret_backend": {"backend_type": "env_var"}})
    [warning] = check_secret_backend()
    assert warning.id == "integrations.W001" and warning.level == checks.WARNING
    assert "OAuth tokens" in warning.hint
    integrations_config({"secret_backend": {"backend_type": "encrypted_sqlite"}})
    assert ids(check_secret_backend()) == ["integrations.E001"]


@pytest.mark.parametrize("backend", ["secret_manager_cloud_b"])
def test_stub_backend_is_a_startup_error(integrations_config: Any, backend: str) -> None:
    integrations_config({"secret_backend": {"backend_type": backend}})
    [error] = check_secret_backend()
    assert error.id == "integrations.E002" and "not available in this release" in error.msg


# --- the real commands, in a subprocess ---------------------------------------------------------

def run(argv: list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("SYNTHORG_", "DJANGO_", "DATABASE_URL", "REDIS_URL", "SECRET_KEY", "DEBUG"))}
    base.update({"SECRET_KEY": "k3y-" + "abcdefghij" * 6, "SYNTHORG_MASTER_KEY": KEY_A,
                 "SYNTHORG_VAR_DIR": str(tmp_path), "SYNTHORG_ALLOW_INSECURE_HTTP": "1",
                 "DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3"})
    base.update(env)
    return subprocess.run([sys.executable, "manage.py", *argv], cwd=ROOT, env=base, capture_output=True,
                          text=True, timeout=180)


def test_manage_py_check_refuses_a_wrong_key(tmp_path: Path) -> None:
    assert run(["check"], tmp_path).returncode == 0  # before migrate: no table, no failure
    migrate = run(["migrate", "--noinput", "-v", "0"], tmp_path)
    assert migrate.returncode == 0, migrate.stderr
    assert run(["check"], tmp_path).returncode == 0  # migrated, nothing encrypted yet
    write = run(["shell", "-c", "from integrations.secrets.fernet import encrypt; encrypt({'a': 'b'})"], tmp_path)
    assert write.returncode == 0, write.stderr
    wrong = run(["check"], tmp_path, SYNTHORG_MASTER_KEY=KEY_B)
    assert wrong.returncode != 0
    assert "integrations.E003" in wrong.stderr and "cannot decrypt the stored key-check value" in wrong.stderr
    assert KEY_B not in wrong.stderr + wrong.stdout
    rotating = run(["check"], tmp_path, SYNTHORG_MASTER_KEY=KEY_B, SYNTHORG_PREVIOUS_MASTER_KEYS=KEY_A)
    assert rotating.returncode == 0, rotating.stderr
    assert run(["check"], tmp_path).returncode == 0

