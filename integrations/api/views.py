"""Connections API: thin views over integrations.services and .selectors."""
from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.generics import GenericAPIView
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from integrations import health, selectors, services
from integrations.api.health_serializers import (
    ConnectionHealthOutputSerializer,
    ConnectionHealthQuerySerializer,
    ConnectionHealthStateOutputSerializer,
    HealthListFilterSerializer,
)
from integrations.api.serializers import (
    ConnectionCreateInputSerializer,
    ConnectionDeleteQuerySerializer,
    ConnectionListFilterSerializer,
    ConnectionOutputSerializer,
    ConnectionTypeOutputSerializer,
    ConnectionUpdateInputSerializer,
    SecretRevealOutputSerializer,
)
from integrations.types import REGISTRY
from synthorg.api import permissions
from synthorg.api.pagination import Pagination

NAME_PARAMETER = OpenApiParameter("name", str, OpenApiParameter.PATH, description="connection name")


class ConnectionListCreateApi(GenericAPIView):
    permission_actions = {"GET": "connection.view", "POST": "connection.add"}
    error_statuses = {"POST": (409, 422)}
    pagination_class = Pagination
    serializer_class = ConnectionOutputSerializer

    @extend_schema(parameters=[ConnectionListFilterSerializer],
                   responses=ConnectionOutputSerializer(many=True), tags=["connections"])
    def get(self, request: Request) -> Response:
        filters = ConnectionListFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        page = self.paginate_queryset(selectors.connection_list(**filters.validated_data))
        return self.get_paginated_response(ConnectionOutputSerializer(
            page, many=True, context={"request": request}).data)

    @extend_schema(request=ConnectionCreateInputSerializer, responses={201: ConnectionOutputSerializer},
                   tags=["connections"])
    def post(self, request: Request) -> Response:
        serializer = ConnectionCreateInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        connection = services.connection_create(**serializer.validated_data, actor=request.user,
                                                request=request._request)
        body = ConnectionOutputSerializer(connection, context={"request": request}).data
        return Response(body, status=status.HTTP_201_CREATED)


class ConnectionDetailApi(APIView):
    permission_actions = {"GET": "connection.view", "PATCH": "connection.change", "DELETE": "connection.delete"}
    error_statuses = {"PATCH": (409, 422), "DELETE": (409,)}

    @extend_schema(parameters=[NAME_PARAMETER], responses=ConnectionOutputSerializer, tags=["connections"])
    def get(self, request: Request, name: str) -> Response:
        connection = selectors.connection_get(name)
        return Response(ConnectionOutputSerializer(connection, context={"request": request}).data)

    @extend_schema(parameters=[NAME_PARAMETER], request=ConnectionUpdateInputSerializer,
                   responses=ConnectionOutputSerializer, tags=["connections"])
    def patch(self, request: Request, name: str) -> Response:
        serializer = ConnectionUpdateInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        connection = services.connection_update(name=name, data=serializer.validated_data, actor=request.user,
                                                request=request._request)
        return Response(ConnectionOutputSerializer(connection, context={"request": request}).data)

    @extend_schema(parameters=[NAME_PARAMETER, ConnectionDeleteQuerySerializer], responses={204: None},
                   tags=["connections"])
    def delete(self, request: Request, name: str) -> Response:
        query = ConnectionDeleteQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        services.connection_delete(name=name, force=query.validated_data["force"], actor=request.user,
                                   request=request._request)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ConnectionTypeListApi(APIView):
    permission_actions = {"GET": "connection_type.view"}

    @extend_schema(responses=ConnectionTypeOutputSerializer(many=True), tags=["connections"])
    def get(self, request: Request) -> Response:
        return Response([t.describe() for t in REGISTRY.values()])


class SecretRevealApi(APIView):
    """Scoped reveal of one secret field: audited, throttled, and a generic 404 on any failure."""

    # Any authenticated user reaches the service, which checks connection.reveal_secret and
    # answers every refusal (permission included) with the same audited 404.
    permission_classes = [IsAuthenticated]
    error_statuses = (429,)

    @extend_schema(
        parameters=[NAME_PARAMETER, OpenApiParameter("field", str, OpenApiParameter.PATH)],
        responses=SecretRevealOutputSerializer, tags=["connections"],
    )
    def get(self, request: Request, name: str, field: str) -> Response:
        value = services.secret_reveal(name=name, field=field, user=request.user, request=request._request)
        response = Response({"field": field, "value": value})
        response["Cache-Control"] = "no-store"
        response["Pragma"] = "no-cache"
        return response


class ConnectionHealthApi(APIView):
    """Run a check now (or return one fresher than health.fresh_result_seconds); same smoothing as the prober."""

    permission_actions = {"GET": "health.view"}

    @extend_schema(parameters=[NAME_PARAMETER, ConnectionHealthQuerySerializer],
                   responses=ConnectionHealthOutputSerializer, tags=["health"])
    def get(self, request: Request, name: str) -> Response:
        query = ConnectionHealthQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        force = query.validated_data["force"]
        if force:
            permissions.require(request.user, "connection.check")
        outcome = health.connection_health_check(name=name, force=force, actor=request.user,
                                                 request=request._request)
        return Response(ConnectionHealthOutputSerializer(outcome.as_dict()).data)


class HealthListApi(GenericAPIView):
    """Every connection's current health as last recorded; never probes."""

    permission_actions = {"GET": "health.view"}
    pagination_class = Pagination
    serializer_class = ConnectionHealthStateOutputSerializer

    @extend_schema(parameters=[HealthListFilterSerializer],
                   responses=ConnectionHealthStateOutputSerializer(many=True), tags=["health"])
    def get(self, request: Request) -> Response:
        filters = HealthListFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        page = self.paginate_queryset(health.connection_health_list(**filters.validated_data))
        return self.get_paginated_response(ConnectionHealthStateOutputSerializer(page, many=True).data)
