"""OAuth API: initiate, the provider callback (an HTML page), status. Thin over services."""
from __future__ import annotations

from typing import Any

from django.template.loader import render_to_string
from django.urls import NoReverseMatch, reverse
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import renderers
from rest_framework.authentication import SessionAuthentication
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from oauthflow import selectors, services
from oauthflow.api.serializers import (
    OAuthCallbackQuerySerializer,
    OAuthInitiateInputSerializer,
    OAuthInitiateOutputSerializer,
    OAuthStatusOutputSerializer,
)
from oauthflow.models import GrantType

CONNECTION_PARAMETER = OpenApiParameter("connection_name", str, OpenApiParameter.PATH,
                                        description="oauth_app connection name")


class OAuthInitiateApi(APIView):
    permission_actions = {"POST": "oauth.grant_start"}
    error_statuses = (404, 409, 422, 503)

    @extend_schema(request=OAuthInitiateInputSerializer, responses=OAuthInitiateOutputSerializer, tags=["oauth"])
    def post(self, request: Request) -> Response:
        serializer = OAuthInitiateInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        grant = data["grant_type"]
        args: dict[str, Any] = {"connection_name": data["connection_name"], "scopes": data.get("scopes"),
                                "user": request.user, "request": request._request}
        if grant == GrantType.DEVICE_CODE:
            flow = services.device_flow_start(**args)
            body: dict[str, Any] = {
                "grant_type": grant, "user_code": flow.user_code, "verification_uri": flow.verification_uri,
                "expires_in": max(0, int((flow.expires_at - flow.created_at).total_seconds())),
                "interval": flow.interval_seconds,
            }
            if flow.verification_uri_complete:
                body["verification_uri_complete"] = flow.verification_uri_complete
        elif grant == GrantType.CLIENT_CREDENTIALS:
            token = services.client_credentials_connect(**args)
            body = {"grant_type": grant, "status": selectors.oauth_status(token.connection)}
        else:
            started = services.authorization_start(**args)
            body = {"grant_type": grant, "authorization_url": started.authorization_url, "state": started.state}
        return Response(OAuthInitiateOutputSerializer(body).data)


class OAuthStatusApi(APIView):
    permission_actions = {"GET": "oauth.status"}
    error_statuses = (422,)  # not_oauth_app: the connection exists but is of another type

    @extend_schema(parameters=[CONNECTION_PARAMETER], responses=OAuthStatusOutputSerializer, tags=["oauth"])
    def get(self, request: Request, connection_name: str) -> Response:
        connection = services.oauth_connection(connection_name)
        return Response(OAuthStatusOutputSerializer(selectors.oauth_status(connection)).data)


# --- the callback: an HTML page for a browser ----------------------------------------------

class CallbackPageRenderer(renderers.BaseRenderer):
    media_type = "text/html"
    format = "html"
    charset = "utf-8"

    def render(self, data: Any, accepted_media_type: str | None = None,
               renderer_context: dict[str, Any] | None = None) -> bytes:
        if isinstance(data, dict) and "outcome" not in data:  # an error body from the handler
            data = {"outcome": "refused", "title": "Invalid OAuth callback",
                    "message": "This authorization response is malformed: start again from the connection."}
        request = (renderer_context or {}).get("request")
        return render_to_string("oauthflow/callback.html", data, request=getattr(request, "_request", None)
                                ).encode("utf-8")


class HTMLOnlyNegotiation(BaseContentNegotiation):
    """The callback is for a browser: it answers HTML whatever the Accept header says."""

    def select_parser(self, request: Request, parsers: list[Any]) -> Any:
        return parsers[0] if parsers else None

    def select_renderer(self, request: Request, renderers: list[Any], format_suffix: str | None = None) -> Any:
        return renderers[0], renderers[0].media_type


TITLES = {"succeeded": "Connected", "failed": "Not connected", "in_progress": "Completing authorization",
          "refused": "Authorization refused"}


def _admin_url(connection_name: str) -> str:
    from integrations import selectors as connection_selectors

    connection = connection_selectors.connection_find(connection_name) if connection_name else None
    if connection is None:
        return ""
    try:
        return reverse("admin:integrations_connection_change", args=[connection.pk])
    except NoReverseMatch:
        return ""


class OAuthCallbackApi(APIView):
    """The provider's redirect. Unauthenticated by necessity; it protects itself: the state is
    random, single use, expiring and bound to the user who started the flow; `iss` is checked
    (and required when the provider's metadata says it sends it); a replay answers with the
    earlier outcome and status and never exchanges a code twice."""

    # Session only: to see which logged-in user (if any) the browser belongs to.
    authentication_classes = [SessionAuthentication]
    permission_classes = [AllowAny]
    renderer_classes = [CallbackPageRenderer]
    content_negotiation_class = HTMLOnlyNegotiation
    # NUL in the query: OAuthCallbackQuerySerializer refuses it (400, the HTML page), not the
    # NUL middleware's JSON (synthorg.middleware.NulCharacterMiddleware).
    validates_own_query = True

    @extend_schema(parameters=[OAuthCallbackQuerySerializer], tags=["oauth"], responses={
        200: OpenApiResponse(str, description="HTML page: connected (or being completed by an earlier request)"),
        400: OpenApiResponse(str, description="HTML page: not connected: unknown, expired or malformed state, "
                                              "issuer missing (RFC 9207) or wrong, the provider's refusal "
                                              "(access_denied...), or a failed code exchange"),
        403: OpenApiResponse(str, description="HTML page: the flow belongs to another logged-in user"),
    })
    def get(self, request: Request) -> Response:
        query = OAuthCallbackQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        result = services.authorization_complete(
            state=params["state"], code=params["code"], error=params["error"],
            error_description=params["error_description"], iss=params.get("iss"), user=request.user,
            request=request._request)
        context = {
            "outcome": result.outcome, "code": result.code, "title": TITLES.get(result.outcome, "OAuth"),
            "message": result.message, "connection_name": result.connection_name, "replayed": result.replayed,
            "admin_url": _admin_url(result.connection_name),
        }
        response = Response(context, status=result.http_status)
        response["Cache-Control"] = "no-store"
        response["Referrer-Policy"] = "no-referrer"  # the URL carried a code
        return response
