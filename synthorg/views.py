"""Unauthenticated probes for orchestrators: `/healthz` (process up), `/readyz` (dependencies)."""
from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

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
