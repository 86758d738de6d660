"""The receiver folds a request's headers once, from the WSGI environ, for every step."""
from __future__ import annotations

from django.test import RequestFactory

from webhooks.receiver import _kept_headers
from webhooks.verifiers.base import FoldedHeaders, fold_headers, headers_from_environ


def test_headers_from_the_environ_are_named_as_django_names_them_lower_cased() -> None:
    request = RequestFactory().post("/api/v1/webhooks/gh/push", data=b"{}", content_type="application/json",
                                    HTTP_X_HUB_SIGNATURE_256="sha256=ab", HTTP_X_GITHUB_EVENT="push",
                                    HTTP_USER_AGENT="GitHub-Hookshot/1")
    folded = headers_from_environ(request.META)
    assert isinstance(folded, FoldedHeaders)
    assert folded == {name.lower(): value for name, value in request.headers.items()}
    assert folded["x-hub-signature-256"] == "sha256=ab" and folded["content-type"] == "application/json"
    assert fold_headers(folded) is folded  # nothing to fold twice


def test_kept_headers_are_the_same_from_folded_and_plain_headers() -> None:
    request = RequestFactory().post("/api/v1/webhooks/gh/push", data=b"{}", content_type="application/json",
                                    HTTP_X_GITHUB_EVENT="push", HTTP_X_GITHUB_DELIVERY="d-1",
                                    HTTP_X_HUB_SIGNATURE_256="sha256=ab", HTTP_X_CUSTOM_EVENT="thing")
    options = {"event_header": "X-Custom-Event"}
    kept = _kept_headers(headers_from_environ(request.META), options)
    assert kept == _kept_headers(request.headers, options)
    assert kept["x-custom-event"] == "thing" and "x-hub-signature-256" not in kept
