"""The error tree every service raises, and the DRF handler that renders it.

Every error response is ``{"detail": <sentence>, "code": <stable snake_case>}``; validation
errors add ``"errors": {field: [messages]}``. Anything unexpected is logged and becomes a
plain 500 whose body names nothing internal.
"""
from __future__ import annotations

import logging
import math
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

logger = logging.getLogger(__name__)


class SynthorgError(Exception):
    status_code: int = 400
    code: str = "error"
    default_detail: str = "The request could not be completed."
    # More top-level keys of the error body beside detail/code (e.g. `fields` of secrets_required).
    extra: dict[str, Any] | None = None

    def __init__(self, detail: str | None = None, *, code: str | None = None,
                 errors: dict[str, list[str]] | None = None) -> None:
        self.detail = detail or self.default_detail
        if code:
            self.code = code
        self.errors = errors
        super().__init__(self.detail)


class BadRequest(SynthorgError):
    status_code = 400
    code = "bad_request"


class NotFound(SynthorgError):
    status_code = 404
    code = "not_found"
    default_detail = "Not found."


class Conflict(SynthorgError):
    status_code = 409
    code = "conflict"


class LimitReached(Conflict):
    code = "limit_reached"


class PayloadTooLarge(SynthorgError):
    status_code = 413
    code = "payload_too_large"
    default_detail = "The request body is too large."


class ValidationFailed(SynthorgError):
    """A well-formed request that breaks a rule: 422 naming the field and the rule."""

    status_code = 422
    code = "validation_failed"
    default_detail = "The request breaks a validation rule."


class RateLimited(SynthorgError):
    status_code = 429
    code = "rate_limited"
    default_detail = "Too many requests."

    def __init__(self, wait: float, detail: str | None = None, **kwargs: Any) -> None:
        self.wait = max(0.0, wait)
        super().__init__(detail, **kwargs)


class ServiceUnavailable(SynthorgError):
    status_code = 503
    code = "service_unavailable"
    default_detail = "The service is temporarily unavailable."


def _body(detail: Any, code: str, errors: Any = None) -> dict[str, Any]:
    body: dict[str, Any] = {"detail": detail, "code": code}
    if errors:
        body["errors"] = errors
    return body


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, SynthorgError):
        response = Response({**(exc.extra or {}), **_body(exc.detail, exc.code, exc.errors)},
                            status=exc.status_code)
        if isinstance(exc, RateLimited):
            response["Retry-After"] = str(max(1, math.ceil(exc.wait)))
        elif getattr(exc, "retry_after", None):  # a dependency outage (secret manager): retry later
            response["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))  # type: ignore[attr-defined]
        return response
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    if isinstance(exc, exceptions.ValidationError):
        response = drf_exception_handler(exc, context)
        assert response is not None
        errors = response.data if isinstance(response.data, dict) else {"non_field_errors": response.data}
        response.data = _body("The request is malformed; see `errors` for each field.", "invalid", errors)
        return response
    if isinstance(exc, exceptions.APIException):
        response = drf_exception_handler(exc, context)
        if response is None:
            return None
        codes = exc.get_codes()
        code = codes if isinstance(codes, str) else exc.default_code
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.default_detail)
        response.data = _body(str(detail), code)
        return response
    # Unexpected: log with the traceback (never rendered), answer a bare 500.
    logger.exception("Unhandled error in %s", context.get("view").__class__.__name__)
    return Response(_body("Internal server error.", "server_error"),
                    status=status.HTTP_500_INTERNAL_SERVER_ERROR)
