"""OpenAPI generation that documents the error responses every endpoint really gives.

Each operation lists, beside its success response, the `{"detail", "code"}` error bodies it
can answer with: 400 when it takes input, 401/403 unless it is public, 404 when the path
has parameters, 503 for the integrations switch, and whatever the view declares in
`error_statuses` (409, 413, 422, 429, ...). Schemathesis holds us to it in CI.
"""
from __future__ import annotations

from typing import Any

from drf_spectacular.openapi import AutoSchema
from rest_framework import serializers
from rest_framework.permissions import AllowAny

ERROR_DESCRIPTIONS = {
    "400": "Malformed request",
    "401": "Not authenticated",
    "403": "Not allowed",
    "404": "Not found",
    "405": "Method not allowed",
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
        codes |= {str(code) for code in getattr(self.view, "error_statuses", ())}
        for code in sorted(codes):
            if code not in responses:
                body = self._get_response_for_code(ErrorSerializer, code, direction=direction)
                body["description"] = ERROR_DESCRIPTIONS.get(code, "Error")
                responses[code] = body
        return responses
