from __future__ import annotations

from typing import Any

from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request

_PERMS = {"POST": "add", "PUT": "change", "PATCH": "change", "DELETE": "delete"}


class StaffOrModelPermission(BasePermission):
    """Reads for any authenticated user; writes for staff or holders of the model permission."""

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        if not (user and user.is_authenticated):
            return False
        if request.method in SAFE_METHODS or user.is_staff:
            return True
        model = view.permission_model
        action = _PERMS.get(request.method or "", "change")
        return user.has_perm(f"{model._meta.app_label}.{action}_{model._meta.model_name}")
