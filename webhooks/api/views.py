"""Webhooks API: activity, trigger rules, workflow runs, signing-secret rotation (thin views)."""
from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.generics import GenericAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from integrations import selectors as connection_selectors
from synthorg.api import permissions
from synthorg.api.pagination import Pagination
from synthorg.errors import NotFound
from webhooks import selectors, services
from webhooks.api.serializers import (
    ActivityOutputSerializer,
    ActivityQuerySerializer,
    SigningSecretRotateInputSerializer,
    SigningSecretRotateOutputSerializer,
    TriggerRuleInputSerializer,
    TriggerRuleOutputSerializer,
    TriggerRuleUpdateInputSerializer,
    WorkflowRunFilterSerializer,
    WorkflowRunOutputSerializer,
)
from webhooks.models import TriggerRule, WorkflowRun

NAME = OpenApiParameter("connection_name", str, OpenApiParameter.PATH, description="connection name")
# The URLs capture `pk`, which drf-spectacular publishes as `{id}` (SCHEMA_COERCE_PATH_PK); the
# parameter must carry the published name or the schema has a required `pk` that is in no path.
ID = OpenApiParameter("id", int, OpenApiParameter.PATH, description="id")


class WebhookActivityApi(APIView):
    permission_actions = {"GET": "delivery.view"}

    @extend_schema(parameters=[NAME, ActivityQuerySerializer], responses=ActivityOutputSerializer, tags=["webhooks"])
    def get(self, request: Request, connection_name: str) -> Response:
        query = ActivityQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        include_payload = query.validated_data["include_payload"]
        if include_payload:
            permissions.require(request.user, "delivery.view_payload")
        connection = connection_selectors.connection_get(connection_name)
        entries = selectors.delivery_activity(connection=connection, limit=query.validated_data["limit"],
                                              include_payload=include_payload)
        return Response(ActivityOutputSerializer({"connection": connection.name, "results": entries}).data)


class TriggerRuleListCreateApi(GenericAPIView):
    permission_actions = {"GET": "trigger_rule.view", "POST": "trigger_rule.add"}
    pagination_class = Pagination
    serializer_class = TriggerRuleOutputSerializer
    error_statuses = {"POST": (422,)}

    @extend_schema(responses=TriggerRuleOutputSerializer(many=True), tags=["webhooks"])
    def get(self, request: Request) -> Response:
        page = self.paginate_queryset(selectors.trigger_rule_list())
        return self.get_paginated_response(TriggerRuleOutputSerializer(page, many=True).data)

    @extend_schema(request=TriggerRuleInputSerializer, responses={201: TriggerRuleOutputSerializer}, tags=["webhooks"])
    def post(self, request: Request) -> Response:
        serializer = TriggerRuleInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        rule = services.trigger_rule_create(data=serializer.validated_data, actor=request.user,
                                            request=request._request)
        return Response(TriggerRuleOutputSerializer(rule).data, status=status.HTTP_201_CREATED)


def _rule(pk: int) -> TriggerRule:
    rule = selectors.trigger_rule_list().filter(pk=pk).first()
    if rule is None:
        raise NotFound("Trigger rule not found.", code="trigger_rule_not_found")
    return rule


class TriggerRuleDetailApi(APIView):
    permission_actions = {"GET": "trigger_rule.view", "PATCH": "trigger_rule.change",
                          "DELETE": "trigger_rule.delete"}
    error_statuses = {"PATCH": (422,)}

    @extend_schema(parameters=[ID], responses=TriggerRuleOutputSerializer, tags=["webhooks"])
    def get(self, request: Request, pk: int) -> Response:
        return Response(TriggerRuleOutputSerializer(_rule(pk)).data)

    @extend_schema(parameters=[ID], request=TriggerRuleUpdateInputSerializer, responses=TriggerRuleOutputSerializer,
                   tags=["webhooks"])
    def patch(self, request: Request, pk: int) -> Response:
        serializer = TriggerRuleUpdateInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        _rule(pk)
        rule = services.trigger_rule_update(rule_id=pk, data=serializer.validated_data, actor=request.user,
                                            request=request._request)
        return Response(TriggerRuleOutputSerializer(rule).data)

    @extend_schema(parameters=[ID], responses={204: None}, tags=["webhooks"])
    def delete(self, request: Request, pk: int) -> Response:
        _rule(pk)
        services.trigger_rule_delete(rule_id=pk, actor=request.user, request=request._request)
        return Response(status=status.HTTP_204_NO_CONTENT)


class WorkflowRunListApi(GenericAPIView):
    permission_actions = {"GET": "workflow_run.view"}
    pagination_class = Pagination
    serializer_class = WorkflowRunOutputSerializer

    @extend_schema(parameters=[WorkflowRunFilterSerializer], responses=WorkflowRunOutputSerializer(many=True),
                   tags=["webhooks"])
    def get(self, request: Request) -> Response:
        filters = WorkflowRunFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        page = self.paginate_queryset(selectors.workflow_run_list(**filters.validated_data))
        return self.get_paginated_response(WorkflowRunOutputSerializer(page, many=True).data)


class WorkflowRunDetailApi(APIView):
    permission_actions = {"GET": "workflow_run.view"}

    @extend_schema(parameters=[ID], responses=WorkflowRunOutputSerializer, tags=["webhooks"])
    def get(self, request: Request, pk: int) -> Response:
        run = WorkflowRun.objects.filter(pk=pk).first()
        if run is None:
            raise NotFound("Workflow run not found.", code="workflow_run_not_found")
        return Response(WorkflowRunOutputSerializer(run).data)


class SigningSecretRotateApi(APIView):
    # The answer holds the new secret: change_connection and reveal_secret.
    permission_actions = {"POST": "connection.signing_secret_rotate"}
    error_statuses = (409, 422)  # 409: the connection's secret backend is read-only (env_var)

    @extend_schema(parameters=[OpenApiParameter("name", str, OpenApiParameter.PATH, description="connection name")],
                   request=SigningSecretRotateInputSerializer, responses=SigningSecretRotateOutputSerializer,
                   tags=["connections"])
    def post(self, request: Request, name: str) -> Response:
        serializer = SigningSecretRotateInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        result = services.signing_secret_rotate(name=name, **serializer.validated_data, actor=request.user,
                                                request=request._request)
        return Response(SigningSecretRotateOutputSerializer({
            "connection": result.connection_name, "previous_valid_until": result.previous_valid_until,
            "secret": result.generated_secret}).data)
