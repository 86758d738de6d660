"""OpenAPI generation that documents the error responses every endpoint really gives.

Each operation lists, beside its success response, the `{"detail", "code"}` error bodies it
can answer with: 400 when it takes input, 401/403 unless it is public, 404 when the path
has parameters, 406 when it negotiates JSON, 503 for the integrations switch, and whatever the
view declares in `error_statuses` (409, 413, 422, 429, ...): a tuple for every method, or a
dict of method -> tuple when the methods differ. Every error body is the one `Error`
component. Schemathesis and tests/contract/test_openapi_valid.py hold us to it in CI.
"""
from __future__ import annotations

from typing import Any

from drf_spectacular.openapi import AutoSchema
from rest_framework import serializers
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.permissions import AllowAny

ERROR_DESCRIPTIONS = {
    "400": "Malformed request",
    "401": "Not authenticated",
    "403": "Not allowed",
    "404": "Not found",
    "405": "Method not allowed",
    "406": "The Accept header asks for something other than JSON",
    "409": "Conflict",
    "413": "Payload too large",
    "415": "Unsupported media type",
    "422": "Breaks a validation rule",
    "429": "Rate limited (see Retry-After)",
    "501": "Not implemented",
    "503": "Unavailable (for example integrations.enabled: false)",
}


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()
    code = serializers.CharField()
    errors = serializers.DictField(required=False, child=serializers.JSONField())
    # secrets_required (409) names the secret fields a destination change needs again.
    fields = serializers.ListField(required=False, child=serializers.CharField())


class SynthorgAutoSchema(AutoSchema):
    def _get_response_bodies(self, direction: Any = "response") -> dict[str, Any]:
        responses = super()._get_response_bodies(direction)
        if direction != "response":
            return responses
        codes = {"400", "503"}
        if not any(isinstance(p, AllowAny) for p in self.view.get_permissions()):
            codes |= {"401", "403"}
        if "{" in self.path:
            codes.add("404")
        if self.method in {"POST", "PUT", "PATCH"}:
            codes.add("415")
        # DRF's negotiation answers 406 when Accept excludes JSON; the HTML callback always answers.
        if issubclass(self.view.content_negotiation_class, DefaultContentNegotiation):
            codes.add("406")
        declared = getattr(self.view, "error_statuses", ())
        if isinstance(declared, dict):
            declared = declared.get(self.method, ())
        codes |= {str(code) for code in declared}
        for code in sorted(codes):
            if code not in responses:
                body = self._get_response_for_code(ErrorSerializer, code, direction=direction)
                body["description"] = ERROR_DESCRIPTIONS.get(code, "Error")
                responses[code] = body
        return responses
