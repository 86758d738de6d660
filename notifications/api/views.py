"""Thin views over `notifications.services` (each names its permission action)."""
from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.generics import GenericAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from notifications import services
from notifications.api.serializers import (
    ProblemDetailOutputSerializer,
    ProblemFilterSerializer,
    ProblemOutputSerializer,
    RuleInputSerializer,
    RuleOutputSerializer,
    RuleUpdateInputSerializer,
    SinkCreatedOutputSerializer,
    SinkInputSerializer,
    SinkOutputSerializer,
    SinkTestOutputSerializer,
    SinkUpdateInputSerializer,
)
from notifications.models import AlertRule, NotificationSink
from synthorg.api.pagination import Pagination

ID = OpenApiParameter("id", int, OpenApiParameter.PATH, description="id")
TAGS = ["alerts"]


class SinkListCreateApi(GenericAPIView):
    permission_actions = {"GET": "notification_sink.view", "POST": "notification_sink.add"}
    pagination_class = Pagination
    serializer_class = SinkOutputSerializer
    error_statuses = {"POST": (422,)}

    @extend_schema(responses=SinkOutputSerializer(many=True), tags=TAGS)
    def get(self, request: Request) -> Response:
        page = self.paginate_queryset(NotificationSink.objects.select_related("connection").order_by("name"))
        return self.get_paginated_response(SinkOutputSerializer(page, many=True).data)

    @extend_schema(request=SinkInputSerializer, responses={201: SinkCreatedOutputSerializer}, tags=TAGS)
    def post(self, request: Request) -> Response:
        serializer = SinkInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        created = services.sink_create(**serializer.validated_data, actor=request.user, request=request._request)
        # The generated whsec_ secret is in this answer and nowhere else, ever.
        return Response({**SinkOutputSerializer(created.sink).data, **created.shown_once},
                        status=status.HTTP_201_CREATED)


class SinkDetailApi(APIView):
    permission_actions = {"GET": "notification_sink.view", "PATCH": "notification_sink.change",
                          "DELETE": "notification_sink.delete"}
    error_statuses = {"PATCH": (409, 422)}

    @extend_schema(parameters=[ID], responses=SinkOutputSerializer, tags=TAGS)
    def get(self, request: Request, pk: int) -> Response:
        return Response(SinkOutputSerializer(services.sink_get(pk)).data)

    @extend_schema(parameters=[ID], request=SinkUpdateInputSerializer, responses=SinkOutputSerializer, tags=TAGS)
    def patch(self, request: Request, pk: int) -> Response:
        serializer = SinkUpdateInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.sink_get(pk)
        sink = services.sink_update(sink_id=pk, data=serializer.validated_data, actor=request.user,
                                    request=request._request)
        return Response(SinkOutputSerializer(sink).data)

    @extend_schema(parameters=[ID], responses={204: None}, tags=TAGS)
    def delete(self, request: Request, pk: int) -> Response:
        services.sink_delete(sink_id=pk, actor=request.user, request=request._request)
        return Response(status=status.HTTP_204_NO_CONTENT)


class SinkTestApi(APIView):
    """Send a test alert through the sink now (one attempt, answered with its outcome)."""

    permission_actions = {"POST": "notification_sink.test"}

    @extend_schema(parameters=[ID], request=None, responses=SinkTestOutputSerializer, tags=TAGS)
    def post(self, request: Request, pk: int) -> Response:
        outcome = services.sink_test(sink_id=pk, actor=request.user, request=request._request)
        return Response({"result": outcome.result, "alert_id": outcome.alert_id, "error": outcome.error})


class RuleListCreateApi(GenericAPIView):
    permission_actions = {"GET": "alert_rule.view", "POST": "alert_rule.add"}
    pagination_class = Pagination
    serializer_class = RuleOutputSerializer
    error_statuses = {"POST": (422,)}

    @extend_schema(responses=RuleOutputSerializer(many=True), tags=TAGS)
    def get(self, request: Request) -> Response:
        page = self.paginate_queryset(AlertRule.objects.prefetch_related("connections", "sinks").order_by("name"))
        return self.get_paginated_response(RuleOutputSerializer(page, many=True).data)

    @extend_schema(request=RuleInputSerializer, responses={201: RuleOutputSerializer}, tags=TAGS)
    def post(self, request: Request) -> Response:
        serializer = RuleInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        rule = services.rule_create(data=serializer.validated_data, actor=request.user, request=request._request)
        return Response(RuleOutputSerializer(rule).data, status=status.HTTP_201_CREATED)


class RuleDetailApi(APIView):
    permission_actions = {"GET": "alert_rule.view", "PATCH": "alert_rule.change", "DELETE": "alert_rule.delete"}
    error_statuses = {"PATCH": (422,)}

    @extend_schema(parameters=[ID], responses=RuleOutputSerializer, tags=TAGS)
    def get(self, request: Request, pk: int) -> Response:
        return Response(RuleOutputSerializer(services.rule_get(pk)).data)

    @extend_schema(parameters=[ID], request=RuleUpdateInputSerializer, responses=RuleOutputSerializer, tags=TAGS)
    def patch(self, request: Request, pk: int) -> Response:
        serializer = RuleUpdateInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.rule_get(pk)
        rule = services.rule_update(rule_id=pk, data=serializer.validated_data, actor=request.user,
                                    request=request._request)
        return Response(RuleOutputSerializer(rule).data)

    @extend_schema(parameters=[ID], responses={204: None}, tags=TAGS)
    def delete(self, request: Request, pk: int) -> Response:
        services.rule_delete(rule_id=pk, actor=request.user, request=request._request)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ProblemListApi(GenericAPIView):
    permission_actions = {"GET": "problem.view"}
    pagination_class = Pagination
    serializer_class = ProblemOutputSerializer

    @extend_schema(parameters=[ProblemFilterSerializer], responses=ProblemOutputSerializer(many=True), tags=TAGS)
    def get(self, request: Request) -> Response:
        filters = ProblemFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        page = self.paginate_queryset(services.problems_list(state=filters.validated_data.get("state")))
        return self.get_paginated_response(ProblemOutputSerializer(page, many=True).data)


class ProblemDetailApi(APIView):
    permission_actions = {"GET": "problem.view"}

    @extend_schema(parameters=[ID], responses=ProblemDetailOutputSerializer, tags=TAGS)
    def get(self, request: Request, pk: int) -> Response:
        return Response(ProblemDetailOutputSerializer(services.problem_get(pk)).data)


class ProblemAcknowledgeApi(APIView):
    """No reminders until the problem resolves. Idempotent."""

    permission_actions = {"POST": "problem.acknowledge"}

    @extend_schema(parameters=[ID], request=None, responses=ProblemDetailOutputSerializer, tags=TAGS)
    def post(self, request: Request, pk: int) -> Response:
        problem = services.problem_acknowledge(problem_id=pk, actor=request.user, request=request._request)
        return Response(ProblemDetailOutputSerializer(problem).data)
