"""`encrypted_sqlite`: only ciphertext at rest, the key-check value, decrypt failures, separate deployments."""
from __future__ import annotations

import json
from typing import Any

import pytest
from cryptography.fernet import Fernet
from django.db import connection as db_connection
from rest_framework.test import APIClient

from integrations import services
from integrations.models import Connection, KeyCheck, SecretRecord
from integrations.secrets import get_backend
from integrations.secrets.base import SecretUnavailable
from integrations.secrets.fernet import KEY_CHECK_PLAINTEXT, decrypt, encrypt, key_fingerprint, keyring
from integrations.secrets.keys import MasterKeyError, load_keyring

pytestmark = pytest.mark.django_db

URL = "/api/v1/connections"
CANARY = "canary-7f3a9c-secret-value"
KEY_A = "qbYj6U5c3rSRlFqbpNHXHw0fyV0TGCkZjmdYk1t1l0A="  # tests/settings.py's key
KEY_B = Fernet.generate_key().decode()


def make(name: str = "gh", token: str = CANARY) -> Connection:
    return services.connection_create(name=name, connection_type="github",
                                      credentials={"token": token, "signing_secret": token + "-sig"})


def test_database_holds_only_ciphertext() -> None:
    connection = make()
    tables = [Connection._meta.db_table, SecretRecord._meta.db_table, KeyCheck._meta.db_table]
    with db_connection.cursor() as cursor:
        for table in tables:
            cursor.execute(f"SELECT * FROM {db_connection.ops.quote_name(table)}")  # noqa: S608 - model tables
            dump = json.dumps(cursor.fetchall(), default=str)
            assert CANARY not in dump, table
    record = SecretRecord.objects.get(pk=connection.secret_id)
    assert record.purpose == "credentials" and record.connection_id == connection.pk
    assert json.loads(Fernet(KEY_A.encode()).decrypt(record.ciphertext.encode())) == {
        "token": CANARY, "signing_secret": CANARY + "-sig"}
    assert record.key_id == key_fingerprint(Fernet(KEY_A.encode()))
    assert KEY_A not in record.key_id and CANARY not in str(record)


def test_first_encrypt_writes_the_key_check_once() -> None:
    assert not KeyCheck.objects.exists()
    encrypt({"a": "1"})
    encrypt({"b": "2"})
    check = KeyCheck.objects.get()
    assert Fernet(KEY_A.encode()).decrypt(check.ciphertext.encode()) == KEY_CHECK_PLAINTEXT


def test_encrypt_round_trips_and_ciphertexts_differ() -> None:
    first, key_id = encrypt({"x": "y"})
    second, _ = encrypt({"x": "y"})
    assert first != second and decrypt(first) == decrypt(second) == {"x": "y"}
    assert key_id == key_fingerprint(keyring().current)


def test_wrong_key_is_reported_for_that_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    connection = make()
    monkeypatch.setenv("SYNTHORG_MASTER_KEY", KEY_B)
    with pytest.raises(SecretUnavailable) as caught:
        services.connection_secrets(connection)
    assert caught.value.code == "secret_decrypt_failed" and caught.value.status_code == 503
    assert "'gh'" in caught.value.detail and "master key is wrong" in caught.value.detail


def test_corrupt_row_breaks_only_that_connection(operator_client: APIClient) -> None:
    broken, healthy = make("broken"), make("healthy", token="other-token")
    SecretRecord.objects.filter(pk=broken.secret_id).update(ciphertext="not-a-fernet-token")
    assert services.connection_secrets(healthy)["token"] == "other-token"
    listing = operator_client.get(URL)
    assert listing.status_code == 200 and listing.json()["count"] == 2
    assert operator_client.get(f"{URL}/broken").status_code == 200
    # Changing its secrets needs the old ones (the merge): a clear 503 naming it.
    response = operator_client.patch(f"{URL}/broken", {"credentials": {"signing_secret": "s"}}, format="json")
    assert response.status_code == 503
    assert response.json()["code"] == "secret_decrypt_failed" and "'broken'" in response.json()["detail"]
    # What needs no decryption still works, and replacing every secret repairs the row? No: the merge
    # needs the old values, so the operator deletes and recreates; delete works.
    assert operator_client.patch(f"{URL}/broken", {"metadata": {"note": "x"}}, format="json").status_code == 200
    assert operator_client.delete(f"{URL}/broken").status_code == 204


def test_missing_secret_record_is_reported_clearly() -> None:
    connection = make()
    SecretRecord.objects.filter(pk=connection.secret_id).delete()
    with pytest.raises(SecretUnavailable) as caught:
        services.connection_secrets(Connection.objects.get(pk=connection.pk))
    assert caught.value.code == "secret_missing"


def test_list_with_a_wrong_key_still_works(monkeypatch: pytest.MonkeyPatch, operator_client: APIClient) -> None:
    make()
    monkeypatch.setenv("SYNTHORG_MASTER_KEY", KEY_B)
    body = operator_client.get(URL).json()
    assert body["count"] == 1 and body["results"][0]["secret_fields"] == ["signing_secret", "token"]


def test_missing_key_at_runtime_refuses_writes_without_orphans(
    monkeypatch: pytest.MonkeyPatch, operator_client: APIClient,
) -> None:
    monkeypatch.delenv("SYNTHORG_MASTER_KEY")
    response = operator_client.post(URL, {"name": "gh", "connection_type": "github",
                                       "credentials": {"token": CANARY}}, format="json")
    assert response.status_code == 503
    assert response.json()["code"] == "master_key_missing"
    assert "SYNTHORG_MASTER_KEY is not set" in response.json()["detail"]
    assert CANARY not in response.content.decode()
    assert not Connection.objects.exists() and not SecretRecord.objects.exists()


@pytest.mark.parametrize(("value", "words"), [
    (None, "SYNTHORG_MASTER_KEY is not set; generate one with"),
    ("too-short", "SYNTHORG_MASTER_KEY is malformed: a master key is 32 url-safe base64-encoded bytes"),
    ("A" * 44, "SYNTHORG_MASTER_KEY is malformed"),
])
def test_missing_or_malformed_key_says_how_to_make_one(monkeypatch: pytest.MonkeyPatch, value: str | None,
                                                       words: str) -> None:
    if value is None:
        monkeypatch.delenv("SYNTHORG_MASTER_KEY")
    else:
        monkeypatch.setenv("SYNTHORG_MASTER_KEY", value)
    with pytest.raises(MasterKeyError) as caught:
        load_keyring()
    assert words in str(caught.value) and "Fernet.generate_key()" in str(caught.value)
    if value:
        assert value not in str(caught.value)


def test_key_may_come_from_a_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    key_file = tmp_path / "master.key"
    key_file.write_text(KEY_B + "\n")
    monkeypatch.delenv("SYNTHORG_MASTER_KEY")
    monkeypatch.setenv("SYNTHORG_MASTER_KEY_FILE", str(key_file))
    assert key_fingerprint(load_keyring().current) == key_fingerprint(Fernet(KEY_B.encode()))


def test_two_deployments_with_different_key_envs_cannot_read_each_other(
    monkeypatch: pytest.MonkeyPatch, integrations_config: Any,
) -> None:
    a = make("deploy-a")
    monkeypatch.setenv("DEPLOY_B_MASTER_KEY", KEY_B)
    integrations_config({"secret_backend": {"master_key_env": "DEPLOY_B_MASTER_KEY"}})
    assert keyring().env_name == "DEPLOY_B_MASTER_KEY"
    with pytest.raises(SecretUnavailable):
        services.connection_secrets(a)
    b = make("deploy-b", token="b-token")
    assert services.connection_secrets(b)["token"] == "b-token"
    integrations_config({})
    with pytest.raises(SecretUnavailable):
        services.connection_secrets(b)
    assert services.connection_secrets(a)["token"] == CANARY


def test_upstream_spelling_of_master_key_env_wins(monkeypatch: pytest.MonkeyPatch, integrations_config: Any) -> None:
    monkeypatch.setenv("UPSTREAM_KEY", KEY_B)
    integrations_config({"secret_backend": {"encrypted_sqlite": {"master_key_env": "UPSTREAM_KEY"}}})
    assert keyring().env_name == "UPSTREAM_KEY"
    assert key_fingerprint(keyring().current) == key_fingerprint(Fernet(KEY_B.encode()))


def test_backend_store_retrieve_delete_rotate_by_ref(monkeypatch: pytest.MonkeyPatch) -> None:
    connection = make()
    backend = get_backend("encrypted_sqlite")
    ref = connection.secret_ref
    assert ref is not None and ref.backend == "encrypted_sqlite"
    assert backend.retrieve(connection=connection, ref=ref)["token"] == CANARY
    new_ref = backend.store(connection=connection, values={"token": "t2"}, ref=ref)
    assert new_ref.secret_id == ref.secret_id and SecretRecord.objects.get(pk=ref.secret_id).version == 2
    assert backend.rotate(ref=ref) is False  # already under the current key
    monkeypatch.setenv("SYNTHORG_MASTER_KEY", KEY_B)
    monkeypatch.setenv("SYNTHORG_PREVIOUS_MASTER_KEYS", KEY_A)
    assert backend.rotate(ref=ref) is True
    monkeypatch.delenv("SYNTHORG_PREVIOUS_MASTER_KEYS")
    assert backend.retrieve(connection=connection, ref=ref) == {"token": "t2"}
    backend.delete(ref=ref)
    assert not SecretRecord.objects.filter(pk=ref.secret_id).exists()
