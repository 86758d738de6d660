"""Unauthenticated probes for orchestrators: `/healthz` (process up), `/readyz` (dependencies)."""
from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from django.views.defaults import page_not_found, server_error

from synthorg import services


@never_cache
@require_safe
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


@never_cache
@require_safe
def readyz(request: HttpRequest) -> JsonResponse:
    result = services.readiness()
    return JsonResponse(
        {"status": "ready" if result["ready"] else "unavailable", "checks": result["checks"]},
        status=200 if result["ready"] else 503,
    )


def json_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """API clients get the `{"detail","code"}` shape even for URLs no view matches."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Not found.", "code": "not_found"}, status=404)
    return page_not_found(request, exception)  # type: ignore[arg-type]


def json_server_error(request: HttpRequest) -> HttpResponse:
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Internal server error.", "code": "server_error"}, status=500)
    return server_error(request)
