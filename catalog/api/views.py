"""MCP catalog API: thin views over catalog.services and .selectors.

Every view answers 404 `mcp_catalog_disabled` while integrations.mcp_catalog.enabled is false.
"""
from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.generics import GenericAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from catalog import selectors, services
from catalog.api.serializers import (
    CatalogEntryOutputSerializer,
    CatalogSearchQuerySerializer,
    InstallationOutputSerializer,
    InstallInputSerializer,
    McpConfigOutputSerializer,
    VerifyJobOutputSerializer,
    entry_body,
)
from catalog.install import mcp_servers_document, merge_installed_servers
from synthorg.api.pagination import Pagination

ENTRY_PARAMETER = OpenApiParameter("entry_id", str, OpenApiParameter.PATH, description="catalog entry id")


class _CatalogApi(APIView):
    error_statuses: tuple[int, ...] = (404,)

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        selectors.catalog_require_enabled()


class _CatalogListApi(GenericAPIView):
    error_statuses: tuple[int, ...] = (404,)
    pagination_class = Pagination
    permission_actions = {"GET": "mcp.view"}

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        selectors.catalog_require_enabled()

    def _entries_page(self, entries: list[Any]) -> Response:
        installed = selectors.installed_entry_ids()
        page = self.paginate_queryset(entries)
        return self.get_paginated_response([entry_body(e, installed) for e in page])


class CatalogListApi(_CatalogListApi):
    serializer_class = CatalogEntryOutputSerializer

    @extend_schema(responses=CatalogEntryOutputSerializer(many=True), tags=["mcp"])
    def get(self, request: Request) -> Response:
        return self._entries_page(selectors.catalog_list())


class CatalogSearchApi(_CatalogListApi):
    serializer_class = CatalogEntryOutputSerializer

    @extend_schema(parameters=[CatalogSearchQuerySerializer], responses=CatalogEntryOutputSerializer(many=True),
                   tags=["mcp"])
    def get(self, request: Request) -> Response:
        query = CatalogSearchQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        return self._entries_page(selectors.catalog_search(query.validated_data["q"]))


class CatalogEntryApi(_CatalogApi):
    permission_actions = {"GET": "mcp.view"}

    @extend_schema(parameters=[ENTRY_PARAMETER], responses=CatalogEntryOutputSerializer, tags=["mcp"])
    def get(self, request: Request, entry_id: str) -> Response:
        entry = selectors.catalog_entry_get(entry_id)
        return Response(entry_body(entry, selectors.installed_entry_ids()))


class InstallApi(_CatalogApi):
    """Idempotent install: 200 with the installation, the same body for the same arguments."""

    permission_actions = {"POST": "mcp.install"}
    error_statuses = (404, 422)

    @extend_schema(request=InstallInputSerializer, responses={200: InstallationOutputSerializer}, tags=["mcp"])
    def post(self, request: Request) -> Response:
        serializer = InstallInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        outcome = services.installation_install(
            entry_id=data["entry_id"], connection_name=data.get("connection_name") or None,
            options=data.get("options") or {}, actor=request.user, request=request._request)
        return Response(InstallationOutputSerializer(outcome.installation).data)


class UninstallApi(_CatalogApi):
    permission_actions = {"DELETE": "mcp.uninstall"}

    @extend_schema(parameters=[ENTRY_PARAMETER], responses={204: None}, tags=["mcp"])
    def delete(self, request: Request, entry_id: str) -> Response:
        services.installation_uninstall(entry_id=entry_id, actor=request.user, request=request._request)
        return Response(status=status.HTTP_204_NO_CONTENT)


class VerifyApi(_CatalogApi):
    """Queue a verify on a worker (never in the web process); poll the job it returns."""

    permission_actions = {"POST": "mcp.verify"}

    @extend_schema(parameters=[ENTRY_PARAMETER], request=None, responses={202: VerifyJobOutputSerializer},
                   tags=["mcp"])
    def post(self, request: Request, entry_id: str) -> Response:
        job = services.verify_job_create(entry_id=entry_id, actor=request.user, request=request._request)
        job.refresh_from_db()  # an eager worker (tests, embedded) may already have finished it
        response = Response(VerifyJobOutputSerializer(job).data, status=status.HTTP_202_ACCEPTED)
        response["Location"] = f"/api/v1/integrations/mcp/verify-jobs/{job.pk}"
        return response


class VerifyJobApi(_CatalogApi):
    permission_actions = {"GET": "mcp.verify_job.view"}

    @extend_schema(parameters=[OpenApiParameter("job_id", str, OpenApiParameter.PATH)],
                   responses=VerifyJobOutputSerializer, tags=["mcp"])
    def get(self, request: Request, job_id: Any) -> Response:
        return Response(VerifyJobOutputSerializer(selectors.verify_job_get(str(job_id))).data)


class InstalledListApi(_CatalogListApi):
    serializer_class = InstallationOutputSerializer

    @extend_schema(responses=InstallationOutputSerializer(many=True), tags=["mcp"])
    def get(self, request: Request) -> Response:
        page = self.paginate_queryset(selectors.installation_list())
        return self.get_paginated_response(InstallationOutputSerializer(page, many=True).data)


class McpConfigApi(_CatalogApi):
    """The effective configuration; secrets are always placeholders here."""

    permission_actions = {"GET": "mcp.view"}

    @extend_schema(responses=McpConfigOutputSerializer, tags=["mcp"])
    def get(self, request: Request) -> Response:
        result = merge_installed_servers(materialise=False)
        return Response({**mcp_servers_document(result), "clashes": result.clashes,
                         "skipped": [{"entry_id": s.entry_id, "reason": s.reason} for s in result.skipped]})
