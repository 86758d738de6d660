"""The tunnel page in the admin: status, start/stop, the public URL and every webhook URL.

`TunnelState` is the one row the tunnel service keeps; its changelist is replaced by the
tunnel page (there is nothing to list). Start and stop are POST-only views behind CSRF and
the action ``tunnel.control`` of `synthorg.permissions` (``integrations.control_tunnel``),
each calling one service of `integrations.tunnel`, which
only records the desired state: the owner process (`manage.py tunnel`) does the rest, so
the page refreshes itself while the tunnel is starting.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.decorators import method_decorator
from django.views.decorators.http import require_POST

from integrations import tunnel
from integrations.models import TunnelState
from integrations.selectors import connection_list
from synthorg import permissions
from synthorg.admin import ReadOnlyAdmin
from synthorg.config import get_config
from synthorg.errors import SynthorgError
from synthorg.public_url import webhook_url

# While the owner is bringing the tunnel up (or down) the page reloads itself this often.
REFRESH_SECONDS = 3


def _webhook_urls(status: tunnel.TunnelStatus, request: HttpRequest) -> list[tuple[str, str | None]]:
    """Through the tunnel while it runs; otherwise what the connection pages show (public URL or this host)."""
    if status.webhook_urls:
        return sorted(status.webhook_urls.items())
    names = connection_list().values_list("name", flat=True)
    return [(name, webhook_url(name, request)) for name in names]


@admin.register(TunnelState)
class TunnelAdmin(ReadOnlyAdmin):
    """No list and no form: the changelist URL shows the tunnel page."""

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        user = request.user
        return bool(user.is_active and user.is_staff and permissions.allowed(user, "tunnel.view"))

    def get_urls(self) -> list[URLPattern]:
        def wrap(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
            return self.admin_site.admin_view(view)

        return [
            path("start/", wrap(self.start_view), name="integrations_tunnel_start"),
            path("stop/", wrap(self.stop_view), name="integrations_tunnel_stop"),
            *super().get_urls(),
        ]

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        status = tunnel.tunnel_status(request)
        config = get_config().integrations.tunnel
        transitioning = status.enabled and status.desired != status.status and status.status != "error"
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Tunnel (ngrok)",
            "subtitle": None,
            "tunnel": status,
            "local_port": config.local_port,
            "auth_token_env": config.auth_token_env,
            "can_control": permissions.allowed(request.user, "tunnel.control"),
            "refresh_seconds": REFRESH_SECONDS if transitioning else None,
            # Start only where it could do something: enabled, and neither up nor on its way up.
            "start_offered": status.enabled and status.status != "running" and status.desired != "running",
            "webhook_urls": _webhook_urls(status, request),
            **(extra_context or {}),
        }
        return TemplateResponse(request, "admin/integrations/tunnel.html", context)

    def _control(self, request: HttpRequest, action: Callable[..., tunnel.TunnelStatus], done: str) -> HttpResponse:
        permissions.require(request.user, "tunnel.control")
        try:
            action(actor=request.user, request=request)
        except SynthorgError as exc:
            self.message_user(request, str(exc.detail), messages.ERROR)
        else:
            self.message_user(request, done, messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:integrations_tunnelstate_changelist"))

    @method_decorator(require_POST)
    def start_view(self, request: HttpRequest) -> HttpResponse:
        return self._control(request, tunnel.tunnel_start,
                             "Tunnel start requested; the tunnel owner process brings it up.")

    @method_decorator(require_POST)
    def stop_view(self, request: HttpRequest) -> HttpResponse:
        return self._control(request, tunnel.tunnel_stop, "Tunnel stopped.")
