"""webhooks.gate: the flood guard, the connection's reservation and the generation stamp in one
Redis round trip; the receiver's answers built on it; and the receiver's connection cache."""
from __future__ import annotations

import logging
import socket
from types import SimpleNamespace
from typing import Any
from unittest import mock

import pytest
import redis
from django.test import Client

from integrations import generation
from integrations.models import Connection, SecretRecord
from integrations.ratelimit.redis_store import RedisStore
from integrations.secrets import fernet
from synthorg.redis_client import get_redis
from tests.webhooks.receiving import GITHUB_SECRET, github_body, github_headers, make_github, post
from webhooks import gate as gate_module
from webhooks import receiver
from webhooks.gate import Admission, LocalBudgets, ReceiptGate, address_bucket, connection_bucket, get_gate
from webhooks.models import Delivery

# Documentation addresses (RFC 5737): only bucket names here, no traffic goes anywhere.
ADDRESS = "192.0.2.10"
OTHER_ADDRESS = "192.0.2.11"


def closed_port() -> int:
    # Bound then released: nothing listens there for the rest of the test.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def dead_gate() -> ReceiptGate:
    return ReceiptGate(redis.Redis(host="127.0.0.1", port=closed_port(), socket_connect_timeout=0.5),
                       LocalBudgets())


@pytest.fixture
def gate(redis_client: Any) -> ReceiptGate:
    return ReceiptGate(get_redis())


def tat(client: Any, connection_name: str) -> bytes | None:
    return client.hget(RedisStore.bucket_key(connection_bucket(connection_name)), "tat")


# --- the gate on Redis --------------------------------------------------------------------


def test_flood_refusal_touches_no_connection_bucket(gate: ReceiptGate, redis_client: Any) -> None:
    for _ in range(2):
        admitted = gate.enter(remote_ip=ADDRESS, connection_name="first", flood_rpm=2, connection_rpm=100)
        assert admitted.flood_retry_after is None and admitted.connection_reserved is True
    spent = tat(redis_client, "first")
    assert spent is not None

    refused = gate.enter(remote_ip=ADDRESS, connection_name="first", flood_rpm=2, connection_rpm=100)
    assert refused.flood_retry_after is not None and refused.flood_retry_after > 0
    assert refused.connection_reserved is None and refused.generation is None
    assert tat(redis_client, "first") == spent
    gate.enter(remote_ip=ADDRESS, connection_name="second", flood_rpm=2, connection_rpm=100)
    assert not redis_client.exists(RedisStore.bucket_key(connection_bucket("second")))

    # Another address has its own budget.
    other = gate.enter(remote_ip=OTHER_ADDRESS, connection_name="first", flood_rpm=2, connection_rpm=100)
    assert other.flood_retry_after is None
    assert redis_client.exists(RedisStore.bucket_key(address_bucket(OTHER_ADDRESS)))


def test_exactly_rpm_reservations_then_refused(gate: ReceiptGate) -> None:
    answers = [gate.enter(remote_ip=ADDRESS, connection_name="gh", flood_rpm=0, connection_rpm=3) for _ in range(4)]
    assert [a.connection_reserved for a in answers] == [True, True, True, False]
    assert all(a.flood_retry_after is None for a in answers)
    # One request per 20 s refills the bucket: the refused one waits about that long.
    assert 0 < answers[3].connection_retry_after <= 20
    assert answers[0].connection_retry_after == 0


def test_bucket_is_per_connection_and_case_insensitive(gate: ReceiptGate) -> None:
    assert gate.enter(remote_ip=None, connection_name="GH", flood_rpm=0, connection_rpm=1).connection_reserved
    assert gate.enter(remote_ip=None, connection_name="gh", flood_rpm=0, connection_rpm=1).connection_reserved is False
    assert gate.enter(remote_ip=None, connection_name="other", flood_rpm=0, connection_rpm=1).connection_reserved


def test_no_limit_reserves_nothing(gate: ReceiptGate, redis_client: Any) -> None:
    admitted = gate.enter(remote_ip=ADDRESS, connection_name="gh", flood_rpm=0, connection_rpm=0)
    assert admitted.connection_reserved is None and admitted.flood_retry_after is None
    assert admitted.generation
    assert tat(redis_client, "gh") is None
    assert not redis_client.exists(RedisStore.bucket_key(address_bucket(ADDRESS)))


def test_refund_gives_one_reservation_back(gate: ReceiptGate) -> None:
    def reserve() -> bool | None:
        return gate.enter(remote_ip=ADDRESS, connection_name="gh", flood_rpm=0, connection_rpm=2).connection_reserved

    assert [reserve(), reserve(), reserve()] == [True, True, False]
    gate.refund(connection_name="gh", connection_rpm=2)
    assert reserve() is True
    assert reserve() is False  # one back, not the whole budget
    gate.refund(connection_name="GH", connection_rpm=2)  # same bucket, whatever the case
    assert reserve() is True


def test_refund_without_a_bucket_or_a_limit_does_nothing(gate: ReceiptGate, redis_client: Any) -> None:
    gate.refund(connection_name="never-seen", connection_rpm=2)
    assert not redis_client.exists(RedisStore.bucket_key(connection_bucket("never-seen")))
    ReceiptGate(None).refund(connection_name="gh", connection_rpm=2)
    gate.refund(connection_name="gh", connection_rpm=0)


@pytest.mark.django_db
def test_generation_stamp_created_when_missing_stable_then_changed(gate: ReceiptGate, redis_client: Any) -> None:
    key = generation.generation_key()  # this run's prefix: ours to delete
    redis_client.delete(key)
    first = gate.enter(remote_ip=ADDRESS, connection_name="gh", flood_rpm=0, connection_rpm=0).generation
    assert first and redis_client.get(key) == first.encode()
    again = gate.enter(remote_ip=OTHER_ADDRESS, connection_name="other", flood_rpm=10, connection_rpm=10)
    assert again.generation == first

    generation.connections_changed()
    changed = gate.enter(remote_ip=ADDRESS, connection_name="gh", flood_rpm=0, connection_rpm=0).generation
    assert changed and changed != first
    assert redis_client.get(key) == changed.encode()


@pytest.mark.parametrize(("flood_rpm", "connection_rpm"), [(10, 10), (10, 0), (0, 10)])
def test_unreachable_redis_falls_back_to_this_process_while_a_limit_is_on(flood_rpm: int,
                                                                         connection_rpm: int) -> None:
    # Issue 13: never a 503 for a dead Redis; the per-process budgets decide (tests/webhooks/test_redis_down*.py).
    admitted = dead_gate().enter(remote_ip=ADDRESS, connection_name="gh", flood_rpm=flood_rpm,
                                 connection_rpm=connection_rpm)
    assert admitted.local is True and admitted.flood_retry_after is None and admitted.generation is None
    assert admitted.connection_reserved is (True if connection_rpm else None)
    dead_gate().refund(connection_name="gh", connection_rpm=10)  # best effort: never raises


def test_unreachable_redis_with_no_limit_only_costs_the_stamp(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="webhooks.gate"):
        admitted = dead_gate().enter(remote_ip=ADDRESS, connection_name="gh", flood_rpm=0, connection_rpm=0)
    # Admitted, nothing reserved, no stamp: nothing cached.
    assert admitted == Admission(local=True)
    assert "Redis) is unreachable" in caplog.text


@pytest.mark.django_db
def test_without_redis_the_flood_guard_uses_the_database_limiter(settings: Any) -> None:
    settings.SYNTHORG_CONFIG_OVERRIDES = {"ratelimit": {"backend": "database"}}
    no_redis = ReceiptGate(None)
    answers = [no_redis.enter(remote_ip=ADDRESS, connection_name="gh", flood_rpm=2, connection_rpm=5)
               for _ in range(3)]
    assert answers[:2] == [Admission(), Admission()]  # nothing reserved, no stamp: take it after verifying
    assert answers[2].flood_retry_after is not None and answers[2].flood_retry_after > 0
    assert answers[2].connection_reserved is None and answers[2].generation is None
    # No address (or no flood limit): nothing to check.
    assert no_redis.enter(remote_ip=None, connection_name="gh", flood_rpm=2, connection_rpm=5) == Admission()
    assert no_redis.enter(remote_ip=ADDRESS, connection_name="gh", flood_rpm=0, connection_rpm=5) == Admission()


def test_get_gate_follows_the_limiter_backend(settings: Any) -> None:
    settings.SYNTHORG_CONFIG_OVERRIDES = {"ratelimit": {"backend": "database"}}
    assert get_gate().client is None
    settings.SYNTHORG_CONFIG_OVERRIDES = {}
    current = get_gate()
    assert current.client is get_redis()
    assert get_gate() is current  # scripts registered once per client


# --- the receiver's answers, end to end -----------------------------------------------------


def good(client: Client, n: int) -> Any:
    body = github_body(n)
    return post(client, "gh", "push", body, github_headers(body, delivery=f"d-{n}"))


@pytest.mark.django_db
def test_refused_deliveries_do_not_spend_the_connection_budget(settings: Any) -> None:
    settings.SYNTHORG_CONFIG_OVERRIDES = {"webhooks": {"rate_limit_rpm": 2}}
    make_github()
    client = Client()
    statuses = []
    for n in range(2):
        body = github_body(100 + n)
        statuses.append(post(client, "gh", "push", body, github_headers(body, secret="wrong-secret")).status_code)
    statuses += [good(client, 1).status_code, good(client, 2).status_code]
    assert statuses == [401, 401, 202, 202]
    third = good(client, 3)
    assert third.status_code == 429
    assert third.json()["code"] == "rate_limited"
    assert 1 <= int(third["Retry-After"]) <= 30
    assert Delivery.objects.count() == 2


@pytest.mark.django_db
def test_duplicates_are_answered_as_such_within_and_over_the_budget(settings: Any) -> None:
    settings.SYNTHORG_CONFIG_OVERRIDES = {"webhooks": {"rate_limit_rpm": 2}}
    make_github()
    client = Client()
    first = good(client, 1)
    assert first.status_code == 202
    delivery_id = first.json()["delivery_id"]
    assert good(client, 1).json() == {"status": "duplicate", "delivery_id": delivery_id}
    assert good(client, 2).status_code == 202  # the duplicate's reservation went back
    assert good(client, 3).status_code == 429
    over = good(client, 1)
    assert over.status_code == 200
    assert over.json() == {"status": "duplicate", "delivery_id": delivery_id}
    assert Delivery.objects.get(pk=delivery_id).duplicates == 2


@pytest.mark.django_db
def test_flooding_address_gets_429_before_anything_else(settings: Any) -> None:
    settings.SYNTHORG_CONFIG_OVERRIDES = {"webhooks": {"flood_rpm_per_ip": 1}}
    make_github()
    client = Client()
    assert good(client, 1).status_code == 202
    flooded = good(client, 2)
    assert flooded.status_code == 429 and flooded.json()["code"] == "rate_limited"
    assert int(flooded["Retry-After"]) >= 1
    assert Delivery.objects.count() == 1


@pytest.mark.django_db
def test_redis_down_with_both_limits_off_still_receives(settings: Any) -> None:
    settings.SYNTHORG_CONFIG_OVERRIDES = {"webhooks": {"rate_limit_rpm": 0, "flood_rpm_per_ip": 0}}
    make_github()
    with mock.patch("webhooks.receiver.get_gate", return_value=dead_gate()):
        assert good(Client(), 1).status_code == 202
        assert good(Client(), 1).json()["status"] == "duplicate"
    assert Delivery.objects.count() == 1


# --- the receiver's connection cache (webhooks.receiver.connection_for_receipt) -------------


@pytest.mark.django_db
def test_second_lookup_under_the_same_generation_reads_nothing(django_assert_num_queries: Any) -> None:
    make_github()
    with django_assert_num_queries(1):
        first, cached = receiver.connection_for_receipt("gh", generation="g1")
    assert first is not None and cached is False
    with django_assert_num_queries(0):
        again, cached = receiver.connection_for_receipt("GH", generation="g1")
    assert again is first and cached is True


@pytest.mark.django_db
def test_another_generation_or_fresh_reads_again(django_assert_num_queries: Any) -> None:
    make_github()
    receiver.connection_for_receipt("gh", generation="g1")
    with django_assert_num_queries(1):
        _, cached = receiver.connection_for_receipt("gh", generation="g2")
    assert cached is False
    with django_assert_num_queries(1):
        _, cached = receiver.connection_for_receipt("gh", generation="g2", fresh=True)
    assert cached is False
    with django_assert_num_queries(0):
        assert receiver.connection_for_receipt("gh", generation="g2")[1] is True


@pytest.mark.django_db
def test_without_a_generation_nothing_is_cached(django_assert_num_queries: Any) -> None:
    make_github()
    for _ in range(2):
        with django_assert_num_queries(1):
            assert receiver.connection_for_receipt("gh")[1] is False
    assert "gh" not in receiver._connection_cache


@pytest.mark.django_db
def test_an_old_entry_is_read_again(django_assert_num_queries: Any) -> None:
    make_github()
    receiver.connection_for_receipt("gh", generation="g1")
    real = receiver.time
    later = SimpleNamespace(monotonic=lambda: real.monotonic() + receiver.CONNECTION_CACHE_SECONDS + 1,
                            time=real.time)
    with mock.patch.object(receiver, "time", later), django_assert_num_queries(1):
        assert receiver.connection_for_receipt("gh", generation="g1")[1] is False
    # Just read again: fresh for another CONNECTION_CACHE_SECONDS.
    with django_assert_num_queries(0):
        assert receiver.connection_for_receipt("gh", generation="g1")[1] is True


@pytest.mark.django_db
def test_an_unknown_name_is_not_cached(django_assert_num_queries: Any) -> None:
    make_github()
    receiver.connection_for_receipt("gh", generation="g1")
    Connection.objects.filter(name="gh").delete()
    with django_assert_num_queries(1):
        assert receiver.connection_for_receipt("gh", generation="g2") == (None, False)
    assert "gh" not in receiver._connection_cache
    with django_assert_num_queries(1):
        assert receiver.connection_for_receipt("gh", generation="g2") == (None, False)


@pytest.mark.django_db
def test_a_secret_changed_behind_the_cache_is_read_again_before_refusing() -> None:
    connection = make_github()
    assert receiver.connection_for_receipt("gh", generation="g1")[0] is not None
    # A bulk update announces nothing: the cached copy still holds the old ciphertext.
    ciphertext, key_id = fernet.encrypt({"token": "ghp_test_token_value", "signing_secret": "the-new-secret"})
    SecretRecord.objects.filter(pk=connection.secret_id).update(ciphertext=ciphertext, key_id=key_id)
    assert receiver._connection_cache["gh"][2].secret_ciphertext != ciphertext

    body = github_body(7)
    receipt = receiver.delivery_receive(
        connection_name="gh", path_event_type="push", body=body,
        headers=github_headers(body, secret="the-new-secret"), content_type="application/json",
        remote_ip=ADDRESS, admission=Admission(generation="g1"))
    assert receipt.status == 202
    assert receiver._connection_cache["gh"][2].secret_ciphertext == ciphertext  # the re-read replaced it

    # The old secret is now refused, even though it once matched a cached copy.
    body = github_body(8)
    refused = receiver.delivery_receive(
        connection_name="gh", path_event_type="push", body=body, headers=github_headers(body, secret=GITHUB_SECRET),
        content_type="application/json", remote_ip=ADDRESS, admission=Admission(generation="g1"))
    assert refused.status == 401


def test_gate_module_exports() -> None:
    # The bucket names the limiter's pauses and tools use.
    assert gate_module.connection_bucket("GitHub.Main") == "webhook:github.main"
    assert gate_module.address_bucket("198.51.100.7") == "webhook-ip:198.51.100.7"


# --- the round trip sent first, read later (issue 15 §7) -----------------------------------


def test_begin_then_result_is_the_same_admission_as_enter(gate: ReceiptGate, redis_client: Any) -> None:
    pending = gate.begin(remote_ip=ADDRESS, connection_name="piped", flood_rpm=100, connection_rpm=2)
    try:
        first = pending.result()
    finally:
        pending.close()
    assert first.flood_retry_after is None and first.connection_reserved is True and first.generation
    assert pending.result() is first  # read once
    second = gate.enter(remote_ip=ADDRESS, connection_name="piped", flood_rpm=100, connection_rpm=2)
    assert second.connection_reserved is True and second.generation == first.generation
    third = gate.enter(remote_ip=ADDRESS, connection_name="piped", flood_rpm=100, connection_rpm=2)
    assert third.connection_reserved is False and third.connection_retry_after > 0


def test_an_answer_never_read_never_reaches_another_command(gate: ReceiptGate, redis_client: Any) -> None:
    pool = gate.client.connection_pool
    pending = gate.begin(remote_ip=ADDRESS, connection_name="unread", flood_rpm=100, connection_rpm=100)
    pending.close()  # the view failed before reading the answer
    assert pool._in_use_connections == set()
    # Every pooled connection is clean: the next commands get their own answers.
    for _ in range(3):
        assert gate.client.ping() is True
        admitted = gate.enter(remote_ip=ADDRESS, connection_name="unread", flood_rpm=100, connection_rpm=100)
        assert admitted.connection_reserved is True and admitted.generation


def test_a_script_the_server_lost_is_loaded_again(gate: ReceiptGate) -> None:
    real_sha = gate._gate.sha
    gate._gate.sha = "0" * 40  # as after a Redis restart: EVALSHA answers NOSCRIPT
    admitted = gate.enter(remote_ip=ADDRESS, connection_name="noscript", flood_rpm=100, connection_rpm=100)
    assert admitted.connection_reserved is True and admitted.generation
    assert gate._gate.sha == real_sha  # redis-py's Script loaded it and took the real digest
    assert gate.client.connection_pool._in_use_connections == set()


def test_redis_dying_between_send_and_answer_falls_back_to_this_process() -> None:
    budgets = LocalBudgets()
    gate = ReceiptGate(get_redis(), budgets)
    pending = gate.begin(remote_ip=ADDRESS, connection_name="dying", flood_rpm=100, connection_rpm=100)
    connection = pending._connection
    assert connection is not None
    with mock.patch.object(connection, "read_response", side_effect=redis.ConnectionError("gone")):
        admitted = pending.result()
    pending.close()
    assert admitted.local is True and admitted.connection_reserved is True and admitted.generation is None
    assert budgets.redis_skipped()  # the retry window is open: no timeout per request meanwhile
    assert connection not in gate.client.connection_pool._available_connections or connection._sock is None


@pytest.mark.django_db
def test_a_body_signed_with_a_rotated_out_secret_is_refused_though_the_cached_copy_accepts_it() -> None:
    connection = make_github()
    assert receiver.connection_for_receipt("gh", generation="g1")[0] is not None
    body = github_body(21)
    old_headers = github_headers(body, secret=GITHUB_SECRET)
    prepared = receiver.delivery_prepare(connection_name="gh", body=body, headers=old_headers)
    assert prepared is not None and prepared.generation == "g1"  # checked on the cached copy
    # The secret changes and the change is announced: the gate now answers another stamp.
    ciphertext, key_id = fernet.encrypt({"token": "ghp_test_token_value", "signing_secret": "the-new-secret"})
    SecretRecord.objects.filter(pk=connection.secret_id).update(ciphertext=ciphertext, key_id=key_id)
    refused = receiver.delivery_receive(
        connection_name="gh", path_event_type="push", body=body, headers=old_headers,
        content_type="application/json", remote_ip=ADDRESS, admission=Admission(generation="g2"),
        prepared=prepared)
    assert refused.status == 401
    assert not Delivery.objects.exists()


@pytest.mark.django_db
def test_prepared_under_the_same_stamp_is_used_without_reading_the_connection(
        django_assert_num_queries: Any) -> None:
    make_github()
    receiver.connection_for_receipt("gh", generation="g1")
    body = github_body(22)
    headers = github_headers(body)
    prepared = receiver.delivery_prepare(connection_name="gh", body=body, headers=headers)
    assert prepared is not None
    with django_assert_num_queries(1):  # the INSERT alone
        receipt = receiver.delivery_receive(
            connection_name="gh", path_event_type="push", body=body, headers=headers,
            content_type="application/json", remote_ip=ADDRESS,
            admission=Admission(generation="g1", connection_reserved=True), prepared=prepared)
    assert receipt.status == 202
    assert Delivery.objects.get().received_at == prepared.received_at


@pytest.mark.django_db
def test_nothing_is_prepared_without_a_fresh_cached_copy_or_a_good_signature() -> None:
    make_github()
    body = github_body(23)
    assert receiver.delivery_prepare(connection_name="gh", body=body, headers=github_headers(body)) is None
    receiver.connection_for_receipt("gh", generation="g1")
    bad = github_headers(body, secret="wrong-secret")
    assert receiver.delivery_prepare(connection_name="gh", body=body, headers=bad) is None
    real = receiver.time
    later = SimpleNamespace(monotonic=lambda: real.monotonic() + receiver.CONNECTION_CACHE_SECONDS + 1,
                            time=real.time)
    with mock.patch.object(receiver, "time", later):
        assert receiver.delivery_prepare(connection_name="gh", body=body, headers=github_headers(body)) is None


@pytest.mark.django_db
def test_a_flooding_address_with_a_small_body_is_refused_and_nothing_stored(settings: Any) -> None:
    settings.SYNTHORG_CONFIG_OVERRIDES = {"webhooks": {"flood_rpm_per_ip": 1}}
    make_github()
    client = Client()
    assert good(client, 31).status_code == 202  # and the connection is now cached: 32 is prepared early
    with mock.patch.object(receiver, "delivery_prepare", wraps=receiver.delivery_prepare) as prepare:
        flooded = good(client, 32)
    assert prepare.call_count == 1
    assert flooded.status_code == 429 and flooded.json()["code"] == "rate_limited"
    assert Delivery.objects.count() == 1
    assert get_redis().connection_pool._in_use_connections == set()


@pytest.mark.django_db
def test_a_body_larger_than_the_early_read_waits_for_the_gate_and_is_stored(settings: Any) -> None:
    from webhooks.views import EARLY_BODY_BYTES

    settings.SYNTHORG_CONFIG_OVERRIDES = {"webhooks": {"max_payload_bytes": 4 * EARLY_BODY_BYTES}}
    make_github()
    body = github_body(34)[:-1] + b', "padding": "' + b"x" * (EARLY_BODY_BYTES + 10) + b'"}'
    with mock.patch.object(receiver, "delivery_prepare", wraps=receiver.delivery_prepare) as prepare:
        response = post(Client(), "gh", "push", body, github_headers(body))
    assert response.status_code == 202, response.content
    assert prepare.call_count == 0
    assert bytes(Delivery.objects.get().body) == body


@pytest.mark.django_db
def test_a_request_that_dies_before_the_gate_answer_is_read_hands_its_reservation_back(settings: Any) -> None:
    from django.http import UnreadablePostError

    settings.SYNTHORG_CONFIG_OVERRIDES = {"webhooks": {"rate_limit_rpm": 2}}
    make_github()
    client = Client(raise_request_exception=False)
    assert good(client, 41).status_code == 202  # one of two spent
    with mock.patch("webhooks.views.read_body", side_effect=UnreadablePostError("client went away")):
        assert good(client, 42).status_code == 500
    assert get_redis().connection_pool._in_use_connections == set()
    # The dead request's reservation went back: one more is admitted, then the limit holds.
    assert good(client, 43).status_code == 202
    assert good(client, 44).status_code == 429
