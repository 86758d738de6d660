"""The per-process cache of decrypted secrets (``secret_decrypt_cached``) and
``connection_secrets(connection, ciphertext=...)``: keyed by the ciphertext and the keyring,
so an update, a rotation, a deletion or a changed master key is never served from it."""
from __future__ import annotations

from collections.abc import Iterator

import pytest
from cryptography.fernet import Fernet
from django.db.models import F

from integrations import services
from integrations.models import Connection, SecretRecord
from integrations.secrets import fernet
from integrations.secrets.base import SecretUnavailable

pytestmark = pytest.mark.django_db

KEY_B = Fernet.generate_key().decode()


@pytest.fixture(autouse=True)
def empty_cache() -> Iterator[None]:
    services.secret_cache_clear()
    yield
    services.secret_cache_clear()


def make(name: str = "gh", secret: str = "first-signing-secret") -> Connection:  # noqa: S107 - a test value
    return services.connection_create(name=name, connection_type="github",
                                      credentials={"token": "ghp_token", "signing_secret": secret})


def with_ciphertext(name: str) -> Connection:
    connection = Connection.objects.annotate(ciphertext=services.secret_ciphertext_subquery()).get(name=name)
    assert connection.ciphertext
    return connection


def test_ciphertext_read_with_the_row_gives_the_backends_secrets() -> None:
    make()
    connection = with_ciphertext("gh")
    assert services.connection_secrets(connection, ciphertext=connection.ciphertext) == \
        services.connection_secrets(connection)


def test_secret_update_is_seen_at_once_through_the_new_ciphertext() -> None:
    make()
    before = with_ciphertext("gh")
    assert services.connection_secrets(before, ciphertext=before.ciphertext)["signing_secret"] == "first-signing-secret"
    services.connection_update(name="gh", data={"credentials": {"signing_secret": "second-signing-secret"}})
    after = with_ciphertext("gh")
    assert after.ciphertext != before.ciphertext
    assert services.connection_secrets(after, ciphertext=after.ciphertext)["signing_secret"] == "second-signing-secret"


def test_update_written_by_another_process_is_seen_at_once() -> None:
    # Another process writes the row directly: nothing in this process is told about it.
    make()
    before = with_ciphertext("gh")
    services.connection_secrets(before, ciphertext=before.ciphertext)
    ciphertext, key_id = fernet.encrypt({"token": "ghp_token", "signing_secret": "written-elsewhere"})
    SecretRecord.objects.filter(pk=before.secret_id).update(ciphertext=ciphertext, key_id=key_id,
                                                            version=F("version") + 1)
    after = with_ciphertext("gh")
    assert services.connection_secrets(after, ciphertext=after.ciphertext)["signing_secret"] == "written-elsewhere"


def test_deleted_secret_record_leaves_no_ciphertext_and_fails() -> None:
    make()
    connection = with_ciphertext("gh")
    services.connection_secrets(connection, ciphertext=connection.ciphertext)
    SecretRecord.objects.filter(pk=connection.secret_id).delete()
    gone = Connection.objects.annotate(ciphertext=services.secret_ciphertext_subquery()).get(name="gh")
    assert gone.ciphertext is None
    with pytest.raises(SecretUnavailable) as caught:
        services.connection_secrets(gone, ciphertext=gone.ciphertext)
    assert caught.value.code == "secret_missing"


def test_changed_master_key_is_not_bypassed_by_the_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    make()
    connection = with_ciphertext("gh")
    assert services.secret_decrypt_cached(connection.ciphertext)["signing_secret"] == "first-signing-secret"
    monkeypatch.setenv("SYNTHORG_MASTER_KEY", KEY_B)
    with pytest.raises(SecretUnavailable) as caught:
        services.secret_decrypt_cached(connection.ciphertext)
    assert caught.value.code == "secret_decrypt_failed"


def test_changing_a_returned_dict_does_not_change_the_cache() -> None:
    make()
    connection = with_ciphertext("gh")
    first = services.secret_decrypt_cached(connection.ciphertext)
    first["signing_secret"] = "tampered"
    assert services.secret_decrypt_cached(connection.ciphertext)["signing_secret"] == "first-signing-secret"


def test_cache_keeps_at_most_its_size(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(services, "SECRET_CACHE_SIZE", 3)
    ciphertexts = [fernet.encrypt({"signing_secret": f"secret-{n}"})[0] for n in range(5)]
    for ciphertext in ciphertexts:
        services.secret_decrypt_cached(ciphertext)
    assert len(services._secret_cache) == 3
    # The oldest went first; every one still decrypts (from the database's ciphertext, not the cache).
    assert [services.secret_decrypt_cached(c)["signing_secret"] for c in ciphertexts] == [
        f"secret-{n}" for n in range(5)]


def test_cached_decryption_skips_fernet(monkeypatch: pytest.MonkeyPatch) -> None:
    ciphertext = fernet.encrypt({"signing_secret": "s"})[0]
    calls: list[str] = []
    real = fernet.decrypt

    def counting(text: str, ring: object = None) -> dict[str, str]:
        calls.append(text)
        return real(text, ring)  # type: ignore[arg-type]

    monkeypatch.setattr(fernet, "decrypt", counting)
    for _ in range(3):
        services.secret_decrypt_cached(ciphertext)
    assert len(calls) == 1
