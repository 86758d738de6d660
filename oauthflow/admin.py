"""OAuth in the admin: token status (never the token), Connect, and the device-flow page.

Pages (``admin:`` namespace):

* ``oauthflow_connect`` (GET) — one ``oauth_app`` connection: token status and two buttons.
* ``oauthflow_connect_start`` (POST) — authorization code + PKCE: `services.authorization_start`,
  then the browser goes to the provider and comes back to the callback page.
* ``oauthflow_device_start`` (POST) — `services.device_flow_start`, then the device page.
* ``oauthflow_device`` (GET) — the user code and verification URL; reloads itself every
  poll interval until the flow is approved, denied or expired (the worker polls the provider).

Both POST controls need the action ``oauth.grant_start`` (``oauthflow.add_oauthtoken``); the pages
``oauth.status`` (``oauthflow.view_oauthtoken`` or change), as in the API (`synthorg.permissions`).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.utils.html import format_html
from django.views.decorators.http import require_GET, require_POST

from oauthflow import selectors, services
from oauthflow.badges import oauth_badge, oauth_badge_html
from oauthflow.dashboard import EXPIRING_SOON
from oauthflow.models import OAuthDeviceFlow, OAuthToken
from synthorg import permissions
from synthorg.admin import RecordAdmin
from synthorg.csp import csp_allow
from synthorg.errors import SynthorgError

CONNECT_ACTION = "oauth.grant_start"
VIEW_ACTION = "oauth.status"
# The device page never reloads faster than this, whatever interval the provider asked for.
MIN_DEVICE_REFRESH_SECONDS = 2


def _scopes(raw: str) -> list[str]:
    return [scope for scope in raw[:2000].split() if scope]


class ExpiryFilter(admin.SimpleListFilter):
    """Expired, or expiring within the dashboard's "soon" window (the OAuth card links here)."""

    title = "expiry"
    parameter_name = "expiry"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("expired", "expired"), ("soon", "expiring within 24 hours")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[OAuthToken]) -> QuerySet[OAuthToken]:
        now = timezone.now()
        if self.value() == "expired":
            return queryset.filter(expires_at__lte=now)
        if self.value() == "soon":
            return queryset.filter(expires_at__isnull=False, expires_at__lte=now + EXPIRING_SOON)
        return queryset


@admin.register(OAuthToken)
class OAuthTokenAdmin(RecordAdmin):
    list_display = ("connection", "grant_type", "status_badge", "expires_at", "last_refreshed_at", "failure_count",
                    "has_refresh_token", "connect_link")
    list_filter = ("status", ExpiryFilter, "grant_type")
    search_fields = ("connection__name",)
    list_select_related = ("connection",)
    # ciphertext, key_id and the lease internals are left out on purpose.
    fields = ("connection", "grant_type", "status_badge", "token_type", "scopes", "expires_at", "obtained_at",
              "last_refreshed_at", "has_refresh_token", "failure_count", "last_error", "next_attempt_at",
              "connect_link")
    readonly_fields = fields

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj: OAuthToken) -> str:
        return oauth_badge_html(obj)

    @admin.display(description="Connect")
    def connect_link(self, obj: OAuthToken) -> str:
        url = reverse("admin:oauthflow_connect", args=[obj.connection.name])
        return format_html('<a href="{}">Connect again</a>', url)

    # --- Connect and the device flow --------------------------------------------------------

    def get_urls(self) -> list[URLPattern]:
        def wrap(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
            return self.admin_site.admin_view(view)

        return [
            path("connect/<str:connection_name>/", wrap(self.connect_view), name="oauthflow_connect"),
            path("connect/<str:connection_name>/start/", wrap(self.connect_start_view),
                 name="oauthflow_connect_start"),
            path("connect/<str:connection_name>/device/", wrap(self.device_start_view),
                 name="oauthflow_device_start"),
            path("device/<int:flow_id>/", wrap(self.device_view), name="oauthflow_device"),
            *super().get_urls(),
        ]

    def _context(self, request: HttpRequest, title: str, **extra: Any) -> dict[str, Any]:
        return {**self.admin_site.each_context(request), "opts": self.opts, "title": title, "subtitle": None,
                **extra}

    def _render_connect(self, request: HttpRequest, connection_name: str, error: str = "",
                        status: int = 200) -> HttpResponse:
        try:
            connection = services.oauth_connection(connection_name)
        except SynthorgError as exc:
            raise Http404(str(exc.detail)) from None
        token_status = selectors.oauth_status(connection)
        context = self._context(
            request, f"Connect {connection.name}", connection=connection, token_status=token_status,
            scopes=" ".join(connection.config.get("scopes") or []), error=error,
            oauth_badge=oauth_badge(OAuthToken.objects.filter(connection=connection).first()),
            has_auth_url=bool(connection.config.get("auth_url")),
            has_device_url=bool(connection.config.get("device_authorization_url")),
            can_connect=permissions.allowed(request.user, CONNECT_ACTION),
            connection_url=reverse("admin:integrations_connection_change", args=[connection.pk]))
        response = TemplateResponse(request, "admin/oauthflow/connect.html", context, status=status)
        # The Connect form posts here and is redirected to the provider: browsers check that
        # redirect against this page's CSP form-action, so the provider's origin joins it.
        csp_allow(response, "form-action", connection.config.get("auth_url") or "")
        return response

    @method_decorator(require_GET)
    def connect_view(self, request: HttpRequest, connection_name: str) -> HttpResponse:
        permissions.require(request.user, VIEW_ACTION)
        return self._render_connect(request, connection_name)

    def _start(self, request: HttpRequest, connection_name: str,
               start: Callable[..., Any]) -> tuple[Any, HttpResponse | None]:
        """Run a flow-starting service with the form's scopes: (its result, None), or (None, the
        Connect page with the error) — a missing connection is a 404."""
        permissions.require(request.user, CONNECT_ACTION)
        try:
            return start(connection_name=connection_name, scopes=_scopes(request.POST.get("scopes", "")) or None,
                         user=request.user, request=request), None
        except SynthorgError as exc:
            if exc.status_code == 404:
                raise Http404(str(exc.detail)) from None
            return None, self._render_connect(request, connection_name, error=str(exc.detail),
                                              status=exc.status_code)

    @method_decorator(require_POST)
    def connect_start_view(self, request: HttpRequest, connection_name: str) -> HttpResponse:
        started, refused = self._start(request, connection_name, services.authorization_start)
        return refused or HttpResponseRedirect(started.authorization_url)

    @method_decorator(require_POST)
    def device_start_view(self, request: HttpRequest, connection_name: str) -> HttpResponse:
        flow, refused = self._start(request, connection_name, services.device_flow_start)
        if refused is not None:
            return refused
        self.message_user(request, "Device flow started: give the user the code below.", messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:oauthflow_device", args=[flow.pk]))

    @method_decorator(require_GET)
    def device_view(self, request: HttpRequest, flow_id: int) -> HttpResponse:
        permissions.require(request.user, VIEW_ACTION)
        flow = selectors.device_flow_get(flow_id)
        if flow is None:
            raise Http404("No such device flow.")
        pending = flow.status == OAuthDeviceFlow.Status.PENDING
        context = self._context(
            request, f"Device authorization for {flow.connection.name}", flow=flow, pending=pending,
            refresh_seconds=max(MIN_DEVICE_REFRESH_SECONDS, flow.interval_seconds) if pending else None,
            connect_url=reverse("admin:oauthflow_connect", args=[flow.connection.name]),
            connection_url=reverse("admin:integrations_connection_change", args=[flow.connection_id]))
        return TemplateResponse(request, "admin/oauthflow/device.html", context)
