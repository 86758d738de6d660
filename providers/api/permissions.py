from __future__ import annotations

from typing import Any

from rest_framework.permissions import BasePermission
from rest_framework.request import Request


class CanCheckProviderCredentials(BasePermission):
    """The resolve check decrypts credentials (never returning them): staff or the change permission."""

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        return bool(user and user.is_authenticated
                    and (user.is_staff or user.has_perm("providers.change_providerconfig")))
