"""Per-connection controls on the connection change page: Check now, Reveal, and a copy button.

The change page is one big form, and HTML forms cannot nest, so each control is a submit
button with its own ``formaction`` (POSTed with the page's CSRF token; the other fields of
the form are ignored). The views are POST-only, check their own permission and call one
service:

* Check now — action ``connection.check`` — `health.connection_health_check(force=True)`
* Reveal — action ``connection.reveal_secret`` (checked and audited by `services.secret_reveal`) —
  answers a ``Cache-Control: no-store`` page that shows the value this once.

The permissions come from `synthorg.permissions.ACTIONS`, as the API's do; a user who may
not use a control does not see its button (a note names the permission instead).
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.decorators import method_decorator
from django.utils.html import format_html, format_html_join
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables
from django.views.decorators.http import require_POST

from integrations import health, services
from integrations.models import Connection
from integrations.ratelimit import RateLimitExceeded
from integrations.types import get_type
from synthorg import permissions
from synthorg.errors import SynthorgError
from synthorg.public_url import webhook_url

CHECK_ACTION = "connection.check"
REVEAL_ACTION = "connection.reveal_secret"
REVEAL_FIELD_PARAMETER = "reveal_field"


# The read-only field callables receive only the object; the request they need for the
# permission check travels beside them, per thread (one ModelAdmin serves every thread).
_current = threading.local()


def current_request() -> HttpRequest | None:
    """The request whose change page is rendering (None outside `render_change_form`)."""
    return getattr(_current, "request", None)


def current_user_may(action: str) -> bool:
    """For the read-only field callables: may the user whose page is rendering use `action`?"""
    request = current_request()
    return request is not None and permissions.allowed(request.user, action)


def needs_note(action: str) -> str:
    return f"(needs the {permissions.need(action).describe()} permission)"


class ConnectionControlsMixin:
    """Mixed into `ConnectionAdmin`: the URLs and the read-only fields that render the buttons."""

    admin_site: Any
    opts: Any
    message_user: Callable[..., None]

    def get_urls(self) -> list[URLPattern]:
        def wrap(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
            return self.admin_site.admin_view(view)

        return [
            path("<path:object_id>/check/", wrap(self.check_view), name="integrations_connection_check"),
            path("<path:object_id>/reveal/", wrap(self.reveal_view), name="integrations_connection_reveal"),
            *super().get_urls(),  # type: ignore[misc]
        ]

    # --- buttons on the change page (read-only fields) ---------------------------------------

    def webhook_url_copy(self, obj: Connection) -> str:
        url = webhook_url(obj.name, current_request())
        if not url:
            return "—"
        # synthorg/static/synthorg/console.js (on every console page) makes it copy; no inline script (CSP).
        return format_html('<button type="button" class="button console-copy" id="copy-webhook-url" '
                           'data-copy="{}">Copy webhook URL</button>', url)

    webhook_url_copy.short_description = "copy"  # type: ignore[attr-defined]

    def check_now_button(self, obj: Connection) -> str:
        if not current_user_may(CHECK_ACTION):
            return needs_note(CHECK_ACTION)
        url = reverse("admin:integrations_connection_check", args=[obj.pk])
        return format_html('<button type="submit" class="button" id="check-now" formaction="{}" formmethod="post" '
                           'formnovalidate>Check now</button>', url)

    check_now_button.short_description = "check"  # type: ignore[attr-defined]

    def reveal_buttons(self, obj: Connection) -> str:
        if not current_user_may(REVEAL_ACTION):
            return needs_note(REVEAL_ACTION)
        names = [f for f in get_type(obj.connection_type).secret_field_names if f in obj.secret_fields]
        if not names:
            return "(no secret field is set)"
        url = reverse("admin:integrations_connection_reveal", args=[obj.pk])
        return format_html_join(
            " ", '<button type="submit" class="button reveal-secret" id="reveal-{}" formaction="{}" '
                 'formmethod="post" formnovalidate name="{}" value="{}">Reveal {}</button>',
            ((name, url, REVEAL_FIELD_PARAMETER, name, name) for name in names))

    reveal_buttons.short_description = "reveal (audited)"  # type: ignore[attr-defined]

    def render_change_form(self, request: HttpRequest, context: dict[str, Any], *args: Any,
                           **kwargs: Any) -> HttpResponse:
        _current.request = request
        try:
            response = super().render_change_form(request, context, *args, **kwargs)  # type: ignore[misc]
            # Read-only fields render when the template does, so render while the request is set.
            return response.render() if hasattr(response, "render") else response
        finally:
            _current.request = None

    # --- the POST-only views -----------------------------------------------------------------

    def _connection(self, object_id: str) -> Connection:
        connection = Connection.objects.filter(pk=object_id).first() if str(object_id).isdigit() else None
        if connection is None:
            raise Http404("No such connection.")
        return connection

    @method_decorator(require_POST)
    def check_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        permissions.require(request.user, CHECK_ACTION)
        connection = self._connection(object_id)
        try:
            outcome = health.connection_health_check(name=connection.name, force=True, actor=request.user,
                                                     request=request)
        except SynthorgError as exc:
            self.message_user(request, str(exc.detail), messages.ERROR)
        else:
            level = messages.SUCCESS if outcome.result.status in ("healthy", "unknown") else messages.WARNING
            self.message_user(request, f"{outcome.name}: {outcome.status} ({outcome.result.status}: "
                                       f"{outcome.result.detail or 'no detail'})", level)
        return HttpResponseRedirect(reverse("admin:integrations_connection_change", args=[connection.pk]))

    @method_decorator(require_POST)
    @method_decorator(never_cache)
    @method_decorator(sensitive_post_parameters())
    @sensitive_variables("value")
    def reveal_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        connection = self._connection(object_id)
        field = request.POST.get(REVEAL_FIELD_PARAMETER, "")[:100]
        try:
            value = services.secret_reveal(name=connection.name, field=field, user=request.user, request=request)
        except services.RevealDenied:
            # Permission, unknown field, unset field: one uniform refusal (already audited).
            raise PermissionDenied from None
        except RateLimitExceeded:
            return HttpResponse("Too many reveals; wait a minute.", status=429, content_type="text/plain")
        context = {**self.admin_site.each_context(request), "opts": self.opts, "title": f"Secret of {connection.name}",
                   "subtitle": None, "connection": connection, "field": field, "value": value,
                   "change_url": reverse("admin:integrations_connection_change", args=[connection.pk])}
        response = TemplateResponse(request, "admin/integrations/reveal.html", context)
        # Shown once: no cache, no back-button copy, no referrer leaking the page.
        response["Cache-Control"] = "no-store, private"
        response["Pragma"] = "no-cache"
        response["Referrer-Policy"] = "no-referrer"
        return response
