"""Time-ordered UUIDs (version 7, RFC 9562) for rows inserted at a high rate.

A random UUID (version 4) lands on a random page of its unique index: under load every insert
touches a different leaf page, and after each checkpoint the first change to a page writes
the whole page to the WAL. A version 7 UUID starts with the Unix time in milliseconds, so new
keys go to the right edge of the index like a sequence, while the 74 random bits keep it as
unguessable and collision-free as needed. Python 3.11 has no ``uuid.uuid7``.
"""
from __future__ import annotations

import os
import time
import uuid

_VERSION_7 = 0x7 << 76
_VARIANT = 0x2 << 62
_RANDOM_BITS = ~(0xF << 76) & ~(0x3 << 62) & ((1 << 80) - 1)


def uuid7() -> uuid.UUID:
    milliseconds = time.time_ns() // 1_000_000
    value = ((milliseconds & 0xFFFF_FFFF_FFFF) << 80 | int.from_bytes(os.urandom(10)) & _RANDOM_BITS
             | _VERSION_7 | _VARIANT)
    return uuid.UUID(int=value)
