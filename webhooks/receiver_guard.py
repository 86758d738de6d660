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

import uuid
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse

from synthorg import csp
from synthorg.middleware import _VALID_REQUEST_ID, REQUEST_ID_HEADER, query_has_nul, request_id_var

RECEIVER_POLICY = csp.policy_header()


class ReceiverGuardMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.META.get("HTTP_X_REQUEST_ID", "")
        request_id = incoming if _VALID_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        request.request_id = request_id  # type: ignore[attr-defined]
        token = request_id_var.set(request_id)
        try:
            response = self._guarded(request)
        finally:
            request_id_var.reset(token)
        response[REQUEST_ID_HEADER] = request_id
        if csp.HEADER not in response:
            response[csp.HEADER] = RECEIVER_POLICY
        return response

    def _guarded(self, request: HttpRequest) -> HttpResponse:
        if "\x00" in request.path:
            return JsonResponse({"detail": "Not found.", "code": "not_found"}, status=404)
        if request.META.get("QUERY_STRING") and query_has_nul(request):
            return JsonResponse({"detail": "The query string contains a NUL character.", "code": "invalid"},
                                status=400)
        return self.get_response(request)
