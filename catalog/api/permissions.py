from __future__ import annotations

from typing import Any

from rest_framework.permissions import BasePermission
from rest_framework.request import Request


class StaffOrPermission(BasePermission):
    """Staff, or a user holding `view.required_permission` (e.g. `catalog.verify_installation`)."""

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        if not (user and user.is_authenticated):
            return False
        return bool(user.is_staff or user.has_perm(view.required_permission))
