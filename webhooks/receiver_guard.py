"""The receiver's first middleware: request id, Content-Security-Policy and the NUL refusal in
one layer (issue 15 §7).

For every other request these are three middlewares (`synthorg.middleware.RequestIdMiddleware`,
`synthorg.csp.ContentSecurityPolicyMiddleware`, `synthorg.middleware.NulCharacterMiddleware`,
consecutive at the top of ``settings.MIDDLEWARE``). The receiver is the one endpoint whose
per-request cost matters (senders post at their own rate), and its answers are small JSON
documents, so `webhooks.wsgi.ReceiverHandler` puts this class in their place. It does what
they do, in the same order, with what is constant for the receiver done once:

- the request id: a valid ``X-Request-ID`` is kept, any other replaced, set for the logs
  (`synthorg.middleware.request_id_var`) and echoed on the response;
- the policy: the receiver renders no page, so no nonce is ever used and the header is the
  policy without one, built once;
- NUL: in the path, 404; in the query string (raw or percent-encoded), 400. Cookies are not
  looked at: nothing on the receiver's path reads them (no session, no CSRF).
"""
from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from synthorg import csp
from synthorg.middleware import nul_in_path_response, nul_in_query_response, query_has_nul, respond_with_request_id

RECEIVER_POLICY = csp.policy_header()


class ReceiverGuardMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = respond_with_request_id(request, self._guarded)
        if csp.HEADER not in response:
            response[csp.HEADER] = RECEIVER_POLICY
        return response

    def _guarded(self, request: HttpRequest) -> HttpResponse:
        if "\x00" in request.path:
            return nul_in_path_response()
        if request.META.get("QUERY_STRING") and query_has_nul(request):
            return nul_in_query_response()
        return self.get_response(request)
