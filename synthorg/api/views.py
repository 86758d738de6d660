from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import generics
from rest_framework.authtoken.views import ObtainAuthToken

from synthorg import selectors
from synthorg.api.serializers import AuditEventFilterSerializer, AuditEventOutputSerializer


class AuthTokenApi(ObtainAuthToken):
    """DRF's token login, with the HttpRequest handed to authenticate(): django-axes needs it
    to count failures per username and address and to refuse a locked-out pair (429)."""

    error_statuses = (429,)

    def get_serializer_context(self) -> dict[str, Any]:
        # The serializer uses the request only for authenticate(); axes flags the lockout on
        # the HttpRequest, where its middleware looks (not on DRF's wrapper).
        return {**super().get_serializer_context(), "request": self.request._request}


@extend_schema(parameters=[AuditEventFilterSerializer], tags=["audit"])
class AuditEventListApi(generics.ListAPIView):
    """The audit log, newest first (synthorg.view_auditevent)."""

    permission_actions = {"GET": "audit.view"}
    serializer_class = AuditEventOutputSerializer

    def get_queryset(self):  # type: ignore[no-untyped-def]
        filters = AuditEventFilterSerializer(data=self.request.query_params)
        filters.is_valid(raise_exception=True)
        return selectors.audit_event_list(**filters.validated_data)
