"""Error reports that hide secrets even while DEBUG is on (`make run` runs with DEBUG).

Django's SafeExceptionReporterFilter switches itself off when DEBUG is true, so the technical
500 page would print raw POST data (a token typed into the admin) and frame locals. This
filter stays active: `sensitive_variables` / `sensitive_post_parameters` always apply, and
settings whose names look secret are always cleansed.
"""
from __future__ import annotations

from typing import Any

from django.views.debug import SafeExceptionReporterFilter


class AlwaysSafeExceptionReporterFilter(SafeExceptionReporterFilter):
    def is_active(self, request: Any) -> bool:
        return True
