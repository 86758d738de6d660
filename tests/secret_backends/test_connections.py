"""Connection credentials in a real secret manager (OpenBao dev server, moto server), per backend:
every type's create/read/PATCH-rotate/reveal/delete, nothing secret in the database, and two
concurrent PATCHes of different secret fields both kept."""
from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from django.apps import apps
from django.contrib.auth.models import Permission
from django.db import connection as db_connection
from django.db import connections
from rest_framework.test import APIClient

from integrations import services
from integrations.models import Connection, PendingSecretDeletion, SecretRecord
from integrations.secrets import managed
from integrations.secrets.base import SecretUnavailable
from synthorg.models import AuditEvent
from tests.secret_backends.conftest import manager_read

URL = "/api/v1/connections"
CANARY = "CANARY-5ecre7-0f-issue14"

# Valid credentials of every connection type: (config fields, secret fields).
TYPES: dict[str, tuple[dict[str, Any], dict[str, str]]] = {
    "github": ({}, {"token": "tok", "signing_secret": "sig"}),
    "slack": ({}, {"token": "tok", "signing_secret": "sig"}),
    "smtp": ({"host": "smtp.example.com", "username": "u"}, {"password": "pw"}),
    "database": ({"dialect": "postgres", "host": "db.example.com", "database": "app", "username": "u"},
                 {"password": "pw"}),
    "generic_http": ({"base_url": "https://api.example.com"}, {"token": "tok", "signing_secret": "sig"}),
    "oauth_app": ({"client_id": "cid", "token_url": "https://auth.example.com/token"}, {"client_secret": "cs"}),
}


def canary(type_name: str, field: str, n: int = 1) -> str:
    return f"{CANARY}-{type_name}-{field}-{n}"


def database_text() -> str:
    """Every row of every table of the service's apps and the audit log, as one text."""
    dump: list[str] = []
    with db_connection.cursor() as cursor:
        for model in apps.get_models():
            if model._meta.app_label in {"contenttypes", "sessions"}:
                continue
            cursor.execute(f"SELECT * FROM {db_connection.ops.quote_name(model._meta.db_table)}")  # noqa: S608
            dump.append(json.dumps(cursor.fetchall(), default=str))
    return "\n".join(dump)


@pytest.fixture
def revealer(operator_user: Any) -> APIClient:
    operator_user.user_permissions.add(Permission.objects.get(codename="reveal_secret"))
    client = APIClient()
    client.force_authenticate(operator_user)
    return client


@pytest.mark.django_db
@pytest.mark.parametrize("type_name", list(TYPES))
def test_every_type_lives_in_the_manager_and_not_in_the_database(
    secret_backend: str, type_name: str, revealer: APIClient, django_capture_on_commit_callbacks: Any,
) -> None:
    config, secret_fields = TYPES[type_name]
    secrets = {field: canary(type_name, field) for field in secret_fields}
    response = revealer.post(URL, {"name": f"c-{type_name}", "connection_type": type_name,
                                   "credentials": {**config, **secrets}}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["secret_backend"] == secret_backend
    connection = Connection.objects.get(name=f"c-{type_name}")
    # The manager holds the JSON object of fields under <prefix>/connections/<id>.
    assert manager_read(secret_backend, managed.CONNECTIONS, connection.pk) == secrets
    record = SecretRecord.objects.get(pk=connection.secret_id)
    assert record.ciphertext.startswith(f"ref:{secret_backend}:") and record.key_id == ""
    assert services.connection_credentials(connection) == {**connection.config, **secrets}

    field = next(iter(secrets))
    rotated = canary(type_name, field, 2)
    patched = revealer.patch(f"{URL}/c-{type_name}", {"credentials": {field: rotated}}, format="json")
    assert patched.status_code == 200, patched.content
    assert manager_read(secret_backend, managed.CONNECTIONS, connection.pk)[field] == rotated
    new_ref = SecretRecord.objects.get(pk=connection.secret_id).ciphertext
    assert new_ref != record.ciphertext  # a new version; the reference moved to it
    reveal = revealer.get(f"{URL}/c-{type_name}/secrets/{field}")
    assert reveal.status_code == 200 and reveal.json()["value"] == rotated

    assert CANARY not in database_text()

    with django_capture_on_commit_callbacks(execute=True):
        assert revealer.delete(f"{URL}/c-{type_name}").status_code == 204
    assert not Connection.objects.filter(pk=connection.pk).exists()
    with pytest.raises(SecretUnavailable):
        manager_read(secret_backend, managed.CONNECTIONS, connection.pk)
    assert not PendingSecretDeletion.objects.exists()
    destroyed = AuditEvent.objects.filter(action="secret.destroy", target=f"connections/{connection.pk}")
    assert destroyed.filter(outcome="success").count() == 1


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_patches_of_different_fields_both_survive(secret_backend: str) -> None:
    services.connection_create(name="both", connection_type="generic_http",
                               credentials={"base_url": "https://api.example.com", "token": "t0",
                                            "signing_secret": "s0-long-enough"})
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def patch(field: str, value: str) -> None:
        try:
            barrier.wait(5)
            services.connection_update(name="both", data={"credentials": {field: value}})
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=patch, args=("token", "t1")),
               threading.Thread(target=patch, args=("signing_secret", "s1-long-enough"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors, errors
    connection = Connection.objects.get(name="both")
    both = {"token": "t1", "signing_secret": "s1-long-enough"}
    assert manager_read(secret_backend, managed.CONNECTIONS, connection.pk) == both
    managed.cache_clear()
    assert services.connection_secrets(connection) == both


@pytest.mark.django_db
def test_a_patch_rolled_back_after_its_write_does_not_block_the_next(secret_backend: str) -> None:
    """The manager keeps the version a rolled-back PATCH wrote (unreferenced); the next PATCH
    still succeeds (Vault: check-and-set against what is there now) and the reference moves on."""
    from django.db import transaction

    connection = services.connection_create(name="rb", connection_type="github", credentials={"token": "a"})
    with pytest.raises(RuntimeError), transaction.atomic():
        services.connection_update(name="rb", data={"credentials": {"token": "rolled-back"}})
        raise RuntimeError("the transaction fails after the secret was written")
    assert services.connection_secrets(Connection.objects.get(pk=connection.pk)) == {"token": "a"}
    services.connection_update(name="rb", data={"credentials": {"token": "c"}})
    assert manager_read(secret_backend, managed.CONNECTIONS, connection.pk) == {"token": "c"}
    assert services.connection_secrets(Connection.objects.get(pk=connection.pk)) == {"token": "c"}


# Vault only: AWS PutSecretValue has no check-and-set (the PATCH's row lock serialises writers there,
# which test_two_concurrent_patches_of_different_fields_both_survive covers on both).
@pytest.mark.django_db
@pytest.mark.parametrize("secret_backend", [managed.VAULT], indirect=True)
def test_check_and_set_refuses_a_writer_racing_inside_the_window(secret_backend: str,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Vault: a version that appears between the metadata read and the write is a 409, not lost."""
    from synthorg.errors import Conflict

    connection = services.connection_create(name="cas", connection_type="github", credentials={"token": "a"})
    old = managed.parse(SecretRecord.objects.get(pk=connection.secret_id).ciphertext)
    managed.write(secret_backend, managed.CONNECTIONS, connection.pk, {"token": "b"}, previous=old)
    manager = managed.manager(secret_backend)
    real_current = manager.current_version

    def racer(location: str) -> str | None:
        seen = real_current(location)
        manager.write(location, {"token": "racer"}, version=seen)  # lands just after our look
        return seen

    monkeypatch.setattr(manager, "current_version", racer)
    with pytest.raises(Conflict):
        managed.write(secret_backend, managed.CONNECTIONS, connection.pk, {"token": "c"}, previous=old)
    assert manager_read(secret_backend, managed.CONNECTIONS, connection.pk) == {"token": "racer"}


@pytest.mark.django_db
def test_reads_are_cached_and_own_writes_invalidate_at_once(secret_backend: str) -> None:
    connection = services.connection_create(name="cached", connection_type="github", credentials={"token": "one"})
    managed.cache_clear()
    before = managed.reads[secret_backend]
    for _ in range(5):
        assert services.connection_secrets(Connection.objects.get(pk=connection.pk)) == {"token": "one"}
    assert managed.reads[secret_backend] - before == 1
    services.connection_update(name="cached", data={"credentials": {"token": "two"}})
    assert services.connection_secrets(Connection.objects.get(pk=connection.pk)) == {"token": "two"}


@pytest.mark.django_db
def test_a_create_that_fails_after_its_secret_was_written_leaves_no_orphan(
    secret_backend: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    ids: list[int] = []

    def failing_audit(**kwargs: Any) -> None:
        ids.append(Connection.objects.get(name="orphan").pk)
        raise RuntimeError("the audit store is down")

    monkeypatch.setattr(services, "audit_record", failing_audit)
    with pytest.raises(RuntimeError):
        services.connection_create(name="orphan", connection_type="github", credentials={"token": "t"})
    assert not Connection.objects.filter(name="orphan").exists()
    with pytest.raises(SecretUnavailable):
        manager_read(secret_backend, managed.CONNECTIONS, ids[0])
