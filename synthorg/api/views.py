from __future__ import annotations

from typing import Any

from django.contrib.auth.signals import user_logged_in
from drf_spectacular.utils import extend_schema
from rest_framework import generics
from rest_framework.authtoken.models import Token
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.request import Request
from rest_framework.response import Response

from synthorg import selectors
from synthorg.api.serializers import AuditEventFilterSerializer, AuditEventOutputSerializer


class AuthTokenApi(ObtainAuthToken):
    """Exchange a username and password for an API token. After too many failures for one
    username from one address (SYNTHORG_LOGIN_FAILURE_LIMIT) it answers 429 `login_locked_out`,
    even to the right password, until the cool-off passes (Retry-After)."""

    # DRF's token login with the HttpRequest handed to authenticate(): django-axes needs it to
    # count failures and to refuse a locked-out pair.

    error_statuses = (429,)

    def get_serializer_context(self) -> dict[str, Any]:
        # The serializer uses the request only for authenticate(); axes flags the lockout on
        # the HttpRequest, where its middleware looks (not on DRF's wrapper).
        return {**super().get_serializer_context(), "request": self.request._request}

    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = serializer.validated_data["user"]
        # A token is a login: the signal resets axes' failure count (AXES_RESET_ON_SUCCESS) and
        # records last_login, as the admin's login does.
        user_logged_in.send(sender=user.__class__, request=request._request, user=user)
        token, _ = Token.objects.get_or_create(user=user)
        return Response({"token": token.key})


@extend_schema(parameters=[AuditEventFilterSerializer], tags=["audit"])
class AuditEventListApi(generics.ListAPIView):
    """The audit log, newest first (synthorg.view_auditevent)."""

    permission_actions = {"GET": "audit.view"}
    serializer_class = AuditEventOutputSerializer

    def get_queryset(self):  # type: ignore[no-untyped-def]
        filters = AuditEventFilterSerializer(data=self.request.query_params)
        filters.is_valid(raise_exception=True)
        return selectors.audit_event_list(**filters.validated_data)
