"""`secrets_migrate` both ways against a real manager, killed half-way and resumed."""
from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command

from integrations import services
from integrations.models import Connection, MigratedSecretSource, SecretRecord
from integrations.secrets import managed, migrate
from synthorg.models import AuditEvent
from tests.secret_backends.conftest import manager_read

pytestmark = pytest.mark.django_db


class Killed(BaseException):
    """Stands for the process dying mid-run (not an error the command handles)."""


def dying(real: Any, *, at: int) -> Any:
    """``real``, except that its ``at``-th call kills the run."""
    calls = [0]

    def call(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        if calls[0] == at:
            raise Killed
        return real(*args, **kwargs)

    return call


def run(*args: str) -> str:
    out = StringIO()
    call_command("secrets_migrate", *args, stdout=out)
    return out.getvalue()


def test_to_the_manager_killed_half_way_resumed_and_back(
    secret_backend: str, integrations_config: Any, monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: Any,
) -> None:
    from django.conf import settings

    managed_config = settings.SYNTHORG_CONFIG_OVERRIDES
    integrations_config({**managed_config, "secret_backend": {**managed_config["secret_backend"],
                                                              "backend_type": "encrypted_sqlite"}})
    for n in range(5):
        services.connection_create(name=f"m{n}", connection_type="github", credentials={"token": f"tok-{n}"})
    assert all(not managed.is_ref(r.ciphertext) for r in SecretRecord.objects.all())
    assert "would move: 5" in run("--to", secret_backend, "--dry-run")
    assert not any(managed.is_ref(r.ciphertext) for r in SecretRecord.objects.all())

    real_write = managed.write
    monkeypatch.setattr(managed, "write", dying(real_write, at=3))
    with pytest.raises(Killed):
        run("--to", secret_backend, "--batch-size", "2")
    monkeypatch.setattr(managed, "write", real_write)
    assert Connection.objects.filter(secret_backend=secret_backend).count() == 2
    moved_refs = dict(SecretRecord.objects.filter(ciphertext__startswith="ref:").values_list("pk", "ciphertext"))

    out = run("--to", secret_backend, "--batch-size", "2")
    assert "moved: 3" in out and f"already at {secret_backend}: 2" in out
    # What the first run moved is left as it was.
    assert all(SecretRecord.objects.get(pk=pk).ciphertext == ref for pk, ref in moved_refs.items())
    for n in range(5):
        connection = Connection.objects.get(name=f"m{n}")
        assert connection.secret_backend == secret_backend
        assert manager_read(secret_backend, managed.CONNECTIONS, connection.pk) == {"token": f"tok-{n}"}
        assert services.connection_secrets(connection) == {"token": f"tok-{n}"}
    assert "moved: 0" in run("--to", secret_backend)

    # Back, killed half-way too: the copies it left in the manager are purged by the next run.
    real_copy = migrate._copy
    monkeypatch.setattr(migrate, "_copy", dying(real_copy, at=3))
    with pytest.raises(Killed):
        run("--to", "encrypted_sqlite")
    monkeypatch.setattr(migrate, "_copy", real_copy)
    assert MigratedSecretSource.objects.count() == 2
    with django_capture_on_commit_callbacks(execute=True):
        out = run("--to", "encrypted_sqlite", "--purge-source")
    assert "moved: 3" in out and "source copies destroyed: 5" in out
    assert not MigratedSecretSource.objects.exists()
    for n in range(5):
        connection = Connection.objects.get(name=f"m{n}")
        assert connection.secret_backend == "encrypted_sqlite"
        assert not managed.is_ref(SecretRecord.objects.get(pk=connection.secret_id).ciphertext)
        managed.cache_clear()
        assert services.connection_secrets(connection) == {"token": f"tok-{n}"}
        with pytest.raises(Exception):
            manager_read(secret_backend, managed.CONNECTIONS, connection.pk)
    assert AuditEvent.objects.filter(action="secrets.migrate").count() >= 4
