"""synthorg.ids.uuid7: RFC 9562 version 7 UUIDs, time-ordered across milliseconds."""
from __future__ import annotations

import time
import uuid

from synthorg.ids import uuid7


def embedded_milliseconds(value: uuid.UUID) -> int:
    # The first 48 bits are the Unix time in milliseconds.
    return value.int >> 80


def test_version_and_variant() -> None:
    for _ in range(100):
        value = uuid7()
        assert isinstance(value, uuid.UUID)
        assert value.version == 7
        assert value.variant == uuid.RFC_4122
        # Round-trips through its text form (what the UUIDField stores on SQLite).
        assert uuid.UUID(str(value)) == value


def test_thousand_ids_are_unique() -> None:
    values = [uuid7() for _ in range(1000)]
    assert len(set(values)) == 1000


def test_ids_made_milliseconds_apart_sort_in_creation_order() -> None:
    values = []
    for _ in range(5):
        values.append(uuid7())
        time.sleep(0.002)  # past the millisecond: only the random bits order ids within one
    assert values == sorted(values)
    assert [str(v) for v in values] == sorted(str(v) for v in values)  # the text form sorts alike
    stamps = [embedded_milliseconds(v) for v in values]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)


def test_embedded_timestamp_is_now_in_milliseconds() -> None:
    before = time.time_ns() // 1_000_000
    value = uuid7()
    after = time.time_ns() // 1_000_000
    assert before <= embedded_milliseconds(value) <= after


def test_random_bits_differ_within_one_millisecond() -> None:
    # Same timestamp, still different ids: the 74 random bits carry the uniqueness.
    values = [uuid7() for _ in range(200)]
    assert len({embedded_milliseconds(value) for value in values}) < 200  # some share a millisecond
    low_bits = {value.int & ((1 << 62) - 1) for value in values}
    assert len(low_bits) == 200
