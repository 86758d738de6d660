"""Providers API: thin views over providers.services and .selectors."""
from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.generics import GenericAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from providers import selectors, services
from providers.api.serializers import (
    ProviderCreateInputSerializer,
    ProviderListFilterSerializer,
    ProviderOutputSerializer,
    ProviderResolveCheckOutputSerializer,
    ProviderUpdateInputSerializer,
)
from synthorg.api.pagination import Pagination

NAME_PARAMETER = OpenApiParameter("name", str, OpenApiParameter.PATH, description="provider name")


class ProviderListCreateApi(GenericAPIView):
    permission_actions = {"GET": "provider.view", "POST": "provider.add"}
    error_statuses = {"POST": (409, 422)}
    pagination_class = Pagination
    serializer_class = ProviderOutputSerializer

    @extend_schema(parameters=[ProviderListFilterSerializer], responses=ProviderOutputSerializer(many=True),
                   tags=["providers"])
    def get(self, request: Request) -> Response:
        filters = ProviderListFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        page = self.paginate_queryset(selectors.provider_list(**filters.validated_data))
        return self.get_paginated_response(ProviderOutputSerializer(page, many=True).data)

    @extend_schema(request=ProviderCreateInputSerializer, responses={201: ProviderOutputSerializer},
                   tags=["providers"])
    def post(self, request: Request) -> Response:
        serializer = ProviderCreateInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        provider = services.provider_create(**serializer.validated_data, actor=request.user,
                                            request=request._request)
        return Response(ProviderOutputSerializer(provider).data, status=status.HTTP_201_CREATED)


class ProviderDetailApi(APIView):
    permission_actions = {"GET": "provider.view", "PATCH": "provider.change", "DELETE": "provider.delete"}
    error_statuses = {"PATCH": (422,)}

    @extend_schema(parameters=[NAME_PARAMETER], responses=ProviderOutputSerializer, tags=["providers"])
    def get(self, request: Request, name: str) -> Response:
        return Response(ProviderOutputSerializer(selectors.provider_get(name)).data)

    @extend_schema(parameters=[NAME_PARAMETER], request=ProviderUpdateInputSerializer,
                   responses=ProviderOutputSerializer, tags=["providers"])
    def patch(self, request: Request, name: str) -> Response:
        serializer = ProviderUpdateInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        provider = services.provider_update(name=name, data=serializer.validated_data, actor=request.user,
                                            request=request._request)
        return Response(ProviderOutputSerializer(provider).data)

    @extend_schema(parameters=[NAME_PARAMETER], responses={204: None}, tags=["providers"])
    def delete(self, request: Request, name: str) -> Response:
        services.provider_delete(name=name, actor=request.user, request=request._request)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ProviderResolveCheckApi(APIView):
    """Whether the provider's credentials resolve now (from its connection or, deprecated, embedded).

    Always 200 for an existing provider: `resolvable` and `code` say what happened. The
    credential value is never returned.
    """

    permission_actions = {"POST": "provider.resolve_check"}

    @extend_schema(parameters=[NAME_PARAMETER], request=None, responses=ProviderResolveCheckOutputSerializer,
                   tags=["providers"])
    def post(self, request: Request, name: str) -> Response:
        result = services.provider_resolve_check(name=name, actor=request.user, request=request._request)
        return Response(ProviderResolveCheckOutputSerializer(result).data)
