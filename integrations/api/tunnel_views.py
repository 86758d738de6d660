"""Tunnel API: start/stop (own permission, audited) record the desired state; status only reads."""
from __future__ import annotations

import dataclasses
from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from integrations import tunnel


class TunnelStatusOutputSerializer(serializers.Serializer):
    enabled = serializers.BooleanField()
    running = serializers.BooleanField()
    public_url = serializers.CharField(allow_null=True)
    has_auth_token = serializers.BooleanField()
    webhook_urls = serializers.DictField(child=serializers.CharField())
    status = serializers.CharField()
    desired = serializers.CharField()
    error = serializers.CharField(allow_blank=True)
    owner = serializers.CharField(allow_blank=True)
    owner_heartbeat_at = serializers.DateTimeField(allow_null=True)


def _body(current: tunnel.TunnelStatus) -> Any:
    return TunnelStatusOutputSerializer(dataclasses.asdict(current)).data


class TunnelStartApi(APIView):
    permission_actions = {"POST": "tunnel.control"}
    error_statuses = (409,)

    @extend_schema(request=None, responses={202: TunnelStatusOutputSerializer}, tags=["tunnel"])
    def post(self, request: Request) -> Response:
        current = tunnel.tunnel_start(actor=request.user, request=request._request)
        return Response(_body(current), status=status.HTTP_202_ACCEPTED)


class TunnelStopApi(APIView):
    permission_actions = {"POST": "tunnel.control"}

    @extend_schema(request=None, responses={200: TunnelStatusOutputSerializer}, tags=["tunnel"])
    def post(self, request: Request) -> Response:
        return Response(_body(tunnel.tunnel_stop(actor=request.user, request=request._request)))


class TunnelStatusApi(APIView):
    permission_actions = {"GET": "tunnel.view"}

    @extend_schema(responses={200: TunnelStatusOutputSerializer}, tags=["tunnel"])
    def get(self, request: Request) -> Response:
        return Response(_body(tunnel.tunnel_status(request._request)))
