"""Quick retries: at most two tries, idempotent methods only, Retry-After honoured within a bound."""
from __future__ import annotations

import email.utils
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import pytest

import synthorg.http as http_module
from synthorg.http import MAX_INLINE_WAIT_SECONDS, PermanentError, TransientError, http_request, parse_retry_after
from tests.peers.http_peer import ConnectRecorder, HttpPeer, Reply

FAST = (2.0, 2.0)


@pytest.fixture
def peer(monkeypatch: pytest.MonkeyPatch) -> Iterator[HttpPeer]:
    ConnectRecorder().install(monkeypatch)
    with HttpPeer() as running:
        yield running


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The pauses http_request takes between tries (recorded instead of slept)."""
    recorded: list[float] = []
    monkeypatch.setattr(http_module, "_sleep", recorded.append)
    return recorded


@pytest.mark.parametrize("method", ["GET", "HEAD", "PUT", "DELETE", "OPTIONS"])
def test_idempotent_method_with_retry_gets_second_try(peer: HttpPeer, waits: list[float], method: str) -> None:
    peer.script("/flaky", Reply(503), Reply(200, b"ok"))
    response = http_request(method, peer.url("/flaky"), timeout=FAST, retry=1)
    assert response.status_code == 200
    assert [r.method for r in peer.received] == [method, method]
    assert len(waits) == 1


@pytest.mark.parametrize("method", ["POST", "PATCH"])
def test_non_idempotent_method_is_never_retried(peer: HttpPeer, waits: list[float], method: str) -> None:
    peer.script("/flaky", Reply(503), Reply(200, b"ok"))
    with pytest.raises(TransientError):
        http_request(method, peer.url("/flaky"), timeout=FAST, retry=1, json={"a": 1})
    assert len(peer.received) == 1
    assert waits == []


def test_retry_without_permission_makes_one_try(peer: HttpPeer, waits: list[float]) -> None:
    peer.script("/flaky", Reply(503), Reply(200, b"ok"))
    with pytest.raises(TransientError):
        http_request("GET", peer.url("/flaky"), timeout=FAST)
    assert len(peer.received) == 1


def test_large_retry_count_still_makes_at_most_two_tries(peer: HttpPeer, waits: list[float]) -> None:
    with pytest.raises(TransientError):
        http_request("GET", peer.url("/status/500"), timeout=FAST, retry=10)
    assert len(peer.received) == 2


def test_permanent_error_is_never_retried(peer: HttpPeer, waits: list[float]) -> None:
    with pytest.raises(PermanentError):
        http_request("GET", peer.url("/status/404"), timeout=FAST, retry=1)
    assert len(peer.received) == 1


def test_timeout_is_retried_for_get(peer: HttpPeer, waits: list[float]) -> None:
    peer.script("/slow-once", Reply(200, b"late", delay=30), Reply(200, b"ok"))
    response = http_request("GET", peer.url("/slow-once"), timeout=(2.0, 0.2), retry=1)
    assert response.content == b"ok"


def test_retry_after_seconds_is_waited(peer: HttpPeer, waits: list[float]) -> None:
    peer.script("/limited", Reply(429, headers={"Retry-After": "2"}), Reply(200, b"ok"))
    assert http_request("GET", peer.url("/limited"), timeout=FAST, retry=1).content == b"ok"
    assert waits == [2.0]


def test_retry_after_beyond_bound_is_left_to_the_task(peer: HttpPeer, waits: list[float]) -> None:
    peer.script("/limited", Reply(429, headers={"Retry-After": "600"}), Reply(200, b"ok"))
    with pytest.raises(TransientError) as caught:
        http_request("GET", peer.url("/limited"), timeout=FAST, retry=1)
    assert caught.value.retry_after == 600.0
    assert caught.value.retry_after > MAX_INLINE_WAIT_SECONDS
    assert len(peer.received) == 1
    assert waits == []


def test_retry_after_seconds_is_carried_on_the_error(peer: HttpPeer) -> None:
    with pytest.raises(TransientError) as caught:
        http_request("GET", peer.url("/retry-after/7"), timeout=FAST)
    assert caught.value.status == 429
    assert caught.value.retry_after == 7.0


def test_retry_after_http_date_is_carried_on_the_error(peer: HttpPeer) -> None:
    when = email.utils.format_datetime(datetime.now(UTC) + timedelta(seconds=120), usegmt=True)
    with pytest.raises(TransientError) as caught:
        http_request("GET", peer.url(f"/retry-after/{quote(when)}"), timeout=FAST)
    assert caught.value.retry_after is not None
    assert 60 < caught.value.retry_after <= 120


def test_503_without_retry_after_has_none(peer: HttpPeer) -> None:
    with pytest.raises(TransientError) as caught:
        http_request("GET", peer.url("/status/503"), timeout=FAST)
    assert caught.value.retry_after is None


NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(("header", "seconds"), [
    ("0", 0.0),
    ("120", 120.0),
    (" 5 ", 5.0),
    ("Thu, 01 Jan 2026 12:00:30 GMT", 30.0),
    ("Thursday, 01-Jan-26 12:01:00 GMT", 60.0),  # RFC 850 form, still allowed by RFC 9110
    ("Thu, 01 Jan 2026 11:00:00 GMT", 0.0),  # in the past: retry now
    (None, None),
    ("soon", None),
    ("-5", None),
    ("1.5", None),
])
def test_parse_retry_after_reads_seconds_and_dates(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header, now=NOW) == seconds
