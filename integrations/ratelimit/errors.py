"""The rate-limit errors: ours (`RateLimitExceeded`), the remote API's (`RemoteRateLimited`) and
the limiter's own outage (`RateLimiterUnavailable`)."""
from __future__ import annotations

import math
from typing import Any

from synthorg.egress import TransientError
from synthorg.errors import RateLimited, ServiceUnavailable


class RateLimitExceeded(RateLimited):
    """Our own limit would make the caller wait longer than it allowed.

    ``retry_after`` (seconds, >= 0) is when the key is expected to admit again; the DRF
    handler renders it as ``Retry-After`` (it is `RateLimited.wait`).
    """

    code = "rate_limited"

    def __init__(self, retry_after: float, *, key: str = "", detail: str | None = None, **kwargs: Any) -> None:
        self.key = key
        if detail is None:
            detail = f"Rate limit reached; retry in {max(1, math.ceil(retry_after))} s."
        super().__init__(retry_after, detail, **kwargs)

    @property
    def retry_after(self) -> float:
        return self.wait


class RemoteRateLimited(RateLimited):
    """A remote API answered "too many requests" (HTTP 429/503 with ``Retry-After``).

    Raise it (or any exception with a numeric ``retry_after``) from a function wrapped by
    `with_connection_rate_limit`: the connection is then paused for every caller.
    """

    code = "remote_rate_limited"
    default_detail = "The remote service is rate limiting this connection."

    def __init__(self, retry_after: float, detail: str | None = None, **kwargs: Any) -> None:
        super().__init__(retry_after, detail, **kwargs)

    @property
    def retry_after(self) -> float:
        return self.wait


class RateLimiterUnavailable(TransientError, ServiceUnavailable):
    """The limiter's store (Redis) cannot be reached, so no admission can be decided.

    A transient error everywhere (issue 13): every ``except TransientError`` and every task
    retrying on it treats the outage as "try again later" (a workflow run waits with backoff
    instead of failing); the API still renders it as 503 ``service_unavailable``.
    """

    status_code = 503
    code = "service_unavailable"

    def __init__(self, message: str = "The rate limiter is unavailable; try again shortly.") -> None:
        super().__init__(message)
