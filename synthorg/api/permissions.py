"""The one permission class of the API: each view names, per HTTP method, an action of
`synthorg.permissions.ACTIONS`, and the user must hold what that action needs.

    class ConnectionDetailApi(APIView):
        permission_actions = {"GET": "connection.view", "PATCH": "connection.change",
                              "DELETE": "connection.delete"}

A view that declares nothing is refused (fail closed); HEAD and OPTIONS ask what GET asks.
"""
from __future__ import annotations

from typing import Any

from rest_framework.exceptions import PermissionDenied
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from synthorg import permissions


def view_action(view: Any, method: str) -> str | None:
    declared: dict[str, str] = getattr(view, "permission_actions", None) or {}
    method = method.upper()
    if method in ("HEAD", "OPTIONS"):
        return declared.get("GET") or (next(iter(declared.values())) if declared else None)
    return declared.get(method)


class ActionPermission(BasePermission):
    """Authenticated, and holding what the view's action for this method needs."""

    message = "You do not have permission to perform this action."

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        if not (user and user.is_authenticated):
            return False  # DRF answers 401 with the authentication challenge
        action = view_action(view, request.method or "GET")
        if action is None:
            # An undeclared method the view does not implement answers 405 after this;
            # one it does implement is refused rather than left open.
            return not hasattr(view, (request.method or "").lower())
        if permissions.allowed(user, action):
            return True
        self.message = permissions.denial_message(action)
        return False


def require(user: Any, action: str) -> None:
    """In a view, for a permission that depends on the input (`?force=true`, `?include_payload=true`):
    a 403 whose detail names the permission."""
    if not permissions.allowed(user, action):
        raise PermissionDenied(permissions.denial_message(action))
