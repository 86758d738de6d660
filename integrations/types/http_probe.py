"""One outbound HTTP call for a health check, with failures turned into a `HealthResult`.

Every HTTP probe goes through ``synthorg.http.http_request`` (egress guard, timeouts, no
redirects) with no retry: a probe reports what it saw, the prober's schedule is the retry.
Messages come from the wrapper's error tree, which never carries a query string or header.
"""
from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

import requests

from integrations.types.probing import DEGRADED, HealthResult, ProbeContext, unhealthy
from synthorg.http import ExternalServiceError, http_request


def http_probe_call(context: ProbeContext, method: str, url: str, *, headers: Mapping[str, str] | None = None,
                    json: Any = None, max_bytes: int = 256 * 1024,
                    allowed_hosts: Collection[str] | None = None) -> requests.Response | HealthResult:
    """The response for a status below 400; otherwise the result that reports the failure.

    HTTP 429 is ``degraded`` (the peer is up but refusing us for now) and carries its
    ``Retry-After``; other 4xx/5xx, transport errors and egress refusals are ``unhealthy``.
    ``allowed_hosts`` (see ``synthorg.http.http_request``) limits where the headers may go.
    """
    try:
        return http_request(method, url, timeout=context.http_timeout, headers=headers, json=json,
                            max_bytes=max_bytes, connection_id=context.connection_id,
                            allowed_hosts=allowed_hosts)
    except ExternalServiceError as exc:
        return result_for_error(exc)


def result_for_error(exc: ExternalServiceError) -> HealthResult:
    if exc.status == 429:
        wait = exc.retry_after
        hint = f"; Retry-After {wait:.0f} s" if wait is not None else "; no Retry-After"
        return HealthResult(DEGRADED, f"{exc}{hint}", retry_after=wait)
    return unhealthy(str(exc))
