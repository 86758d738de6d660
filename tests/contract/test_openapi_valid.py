"""The OpenAPI schema is valid OpenAPI 3 and documents every status an endpoint answers.

`openapi-spec-validator` checks the document as a whole (it rejected a required `pk` path
parameter that was in no path); the census below drives each endpoint into the errors it
can give and checks the status, the content type and the `{"detail","code"}` body against
the operation's documented responses (GET /oauth/status of a non-oauth_app connection
answered an undocumented 422; the callback answered JSON for a NUL where it promises HTML).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import pytest
from drf_spectacular.generators import SchemaGenerator
from openapi_spec_validator import validate
from rest_framework.test import APIClient

from integrations import services as connection_services

ERROR_REF = "#/components/schemas/Error"


@pytest.fixture
def schema(db: Any) -> dict[str, Any]:
    return SchemaGenerator().get_schema(request=None, public=True)


def _operations(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(path, method, operation) for path, item in schema["paths"].items()
            for method, operation in item.items() if method in {"get", "post", "put", "patch", "delete"}]


def test_schema_is_valid_openapi(schema: dict[str, Any]) -> None:
    validate(schema)  # raises OpenAPIValidationError with the offending path


def test_every_path_parameter_is_in_its_path(schema: dict[str, Any]) -> None:
    for path, method, operation in _operations(schema):
        in_path = set(re.findall(r"{(\w+)}", path))
        declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
        assert declared == in_path, (method, path, declared)


def test_every_json_error_response_is_the_one_error_component(schema: dict[str, Any]) -> None:
    assert set(schema["components"]["schemas"]["Error"]["required"]) == {"detail", "code"}
    for path, method, operation in _operations(schema):
        for status, response in operation["responses"].items():
            body = response.get("content", {}).get("application/json")
            if int(status) >= 400 and body is not None:
                assert body["schema"] == {"$ref": ERROR_REF}, (method, path, status)


def test_list_endpoints_document_no_write_errors(schema: dict[str, Any]) -> None:
    """`error_statuses` per method: a GET list cannot answer the 409/422 of its POST."""
    operation = schema["paths"]["/api/v1/connections"]
    assert {"409", "422"} <= set(operation["post"]["responses"])
    assert not {"409", "422"} & set(operation["get"]["responses"])


# --- the census: each error an endpoint can give is documented ------------------------------

@dataclass
class Probe:
    name: str
    method: str
    url: str
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"
    anonymous: bool = False


PROBES = [
    Probe("oauth status of a github connection", "get", "/api/v1/oauth/status/gh-ops", 422),
    Probe("oauth status of an unknown connection", "get", "/api/v1/oauth/status/nobody", 404),
    Probe("oauth callback with NUL in a parameter", "get", "/api/v1/oauth/callback?state=a%00b&code=c", 400,
          content_type="text/html", anonymous=True),
    Probe("list without JSON in Accept", "get", "/api/v1/connections", 406, headers={"HTTP_ACCEPT": "text/csv"}),
    Probe("a format override names no renderer and is ignored", "get", "/api/v1/connections?format=xml", 200),
    Probe("unknown trigger rule", "get", "/api/v1/webhooks/triggers/999999", 404),
    Probe("unknown trigger rule (patch)", "patch", "/api/v1/webhooks/triggers/999999", 404, body={"enabled": False}),
    Probe("unknown trigger rule (delete)", "delete", "/api/v1/webhooks/triggers/999999", 404),
    Probe("unknown workflow run", "get", "/api/v1/webhooks/runs/999999", 404),
    Probe("duplicate connection", "post", "/api/v1/connections", 409,
          body={"name": "gh-ops", "connection_type": "github", "credentials": {"token": "t" * 20}}),
    Probe("connection body of the wrong media type", "post", "/api/v1/connections", 415, body="name=x",
          headers={"CONTENT_TYPE": "text/plain"}),
    Probe("rotate a signing secret of a type without webhooks", "post",
          "/api/v1/connections/mail/signing-secret/rotate", 422, body={}),
    Probe("anonymous list", "get", "/api/v1/connections", 401, anonymous=True),
    Probe("delete with a malformed force flag", "delete", "/api/v1/connections/gh-ops?force=maybe", 400),
    Probe("OAuth initiate for a github connection", "post", "/api/v1/oauth/initiate", 422,
          body={"connection_name": "gh-ops", "grant_type": "authorization_code"}),
    Probe("tunnel start while disabled", "post", "/api/v1/integrations/tunnel/start", 409),
    Probe("unknown verify job", "get", "/api/v1/integrations/mcp/verify-jobs/00000000-0000-0000-0000-000000000000",
          404),
    Probe("uninstall is idempotent", "delete", "/api/v1/integrations/mcp/catalog/install/nope", 204),
    Probe("reveal of a field that is not set", "get", "/api/v1/connections/gh-ops/secrets/signing_secret", 404),
]


def _operation_for(schema: dict[str, Any], method: str, url: str) -> dict[str, Any]:
    path = url.split("?")[0]
    for template, item in schema["paths"].items():
        pattern = "^" + re.sub(r"{\w+}", "[^/]+", template) + "$"
        if re.match(pattern, path) and method in item:
            return item[method]
    raise AssertionError(f"{method.upper()} {path} is not in the schema")


@pytest.mark.django_db
@pytest.mark.parametrize("probe", PROBES, ids=[p.name for p in PROBES])
def test_each_error_an_endpoint_gives_is_documented(probe: Probe, schema: dict[str, Any], superuser: Any) -> None:
    connection_services.connection_create(name="gh-ops", connection_type="github", credentials={"token": "t" * 20})
    connection_services.connection_create(name="mail", connection_type="smtp", credentials={
        "host": "127.0.0.1", "port": 2525, "use_tls": False, "username": "u", "password": "p" * 12})
    client = APIClient()
    if not probe.anonymous:
        client.force_authenticate(superuser)
    kwargs: dict[str, Any] = dict(probe.headers)
    if probe.body is not None:
        if isinstance(probe.body, str):
            kwargs["data"] = probe.body
            kwargs["content_type"] = kwargs.pop("CONTENT_TYPE")
        else:
            kwargs["data"], kwargs["format"] = probe.body, "json"
    response = getattr(client, probe.method)(probe.url, **kwargs)

    assert response.status_code == probe.status, response.content[:300]
    documented = _operation_for(schema, probe.method, probe.url)["responses"]
    assert str(response.status_code) in documented, f"{probe.status} is not documented"
    content = documented[str(response.status_code)].get("content", {})
    if response.status_code == 204:
        assert not response.content and not content
        return
    assert response["Content-Type"].split(";")[0] == probe.content_type
    assert probe.content_type in content, f"the schema promises {sorted(content)}"
    if probe.status >= 400 and probe.content_type == "application/json":
        body = response.json()
        assert isinstance(body["detail"], str) and isinstance(body["code"], str)
