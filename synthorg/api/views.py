from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import generics
from rest_framework.permissions import IsAdminUser

from synthorg import selectors
from synthorg.api.serializers import AuditEventFilterSerializer, AuditEventOutputSerializer


@extend_schema(parameters=[AuditEventFilterSerializer], tags=["audit"])
class AuditEventListApi(generics.ListAPIView):
    """The audit log, newest first (staff only)."""

    permission_classes = [IsAdminUser]
    serializer_class = AuditEventOutputSerializer

    def get_queryset(self):  # type: ignore[no-untyped-def]
        filters = AuditEventFilterSerializer(data=self.request.query_params)
        filters.is_valid(raise_exception=True)
        return selectors.audit_event_list(**filters.validated_data)
