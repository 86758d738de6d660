"""The admin's "Connect" page for an oauth_app connection: a confirmation with a POST button
that starts the authorization-code flow and sends the browser to the provider."""
from __future__ import annotations

from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.views.decorators.http import require_http_methods

from oauthflow import selectors, services
from synthorg.errors import SynthorgError


@staff_member_required
@require_http_methods(["GET", "POST"])
def connect_page(request: HttpRequest, connection_name: str) -> HttpResponse:
    try:
        connection = services.oauth_connection(connection_name)
    except SynthorgError as exc:
        return render(request, "oauthflow/connect.html", {"error": exc.detail}, status=exc.status_code)
    context = {"connection": connection, "status": selectors.oauth_status(connection),
               "scopes": " ".join(connection.config.get("scopes") or [])}
    if request.method == "POST":
        scopes = services_scopes(request.POST.get("scopes", ""))
        try:
            started = services.authorization_start(connection_name=connection.name, scopes=scopes or None,
                                                   user=request.user, request=request)
        except SynthorgError as exc:
            context["error"] = exc.detail
            return render(request, "oauthflow/connect.html", context, status=exc.status_code)
        return HttpResponseRedirect(started.authorization_url)
    return render(request, "oauthflow/connect.html", context)


def services_scopes(raw: str) -> list[str]:
    return [scope for scope in raw[:2000].split() if scope]
