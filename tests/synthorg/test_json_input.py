"""Issue 13, part 1: one validation step for all JSON the API takes (synthorg.parsers).

Observed before: a lone surrogate in connection metadata, credentials, trigger parameters or
MCP options, or JSON nested 100,000 deep, answered 500 (RecursionError in the parser and in
contains_nul). Now each is a 400 ``{"detail", "code"}`` naming the field's path.
"""
from __future__ import annotations

import io
import json
from typing import Any

import pytest
from rest_framework.exceptions import ParseError
from rest_framework.test import APIClient

from integrations import services as connection_services
from synthorg.errors import BadRequest
from synthorg.json_values import nesting_exceeds, storable_copy, unstorable_path
from synthorg.parsers import MAX_NESTING, JSONInputParser

pytestmark = pytest.mark.django_db

CONNECTIONS = "/api/v1/connections"
TRIGGERS = "/api/v1/webhooks/triggers"
INSTALL = "/api/v1/integrations/mcp/catalog/install"


@pytest.fixture
def root_client(superuser: Any) -> APIClient:
    client = APIClient()
    client.force_authenticate(superuser)
    return client


def send(client: APIClient, method: str, url: str, body: str | bytes) -> Any:
    raw = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body
    return getattr(client, method)(url, data=raw, content_type="application/json")


def github_connection(**extra: Any) -> dict[str, Any]:
    return {"name": "gh", "connection_type": "github",
            "credentials": {"token": "ghp_x", "signing_secret": "s" * 20}, **extra}


def assert_names(response: Any, path: str, code: str = "invalid_character") -> None:
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["code"] == code and body["detail"].startswith(f"{path}: ")
    assert path in body["errors"]


# JSON escapes, so the body itself is plain ASCII: exactly what a client sends.
LONE = '"\\ud800"'


@pytest.mark.parametrize(("body", "path"), [
    ('{"name": "gh", "connection_type": "github", "credentials": {"token": "ghp_x"}, "metadata": {"team": ' + LONE + "}}",
     "metadata.team"),
    ('{"name": "gh", "connection_type": "github", "credentials": {"token": ' + LONE + "}}", "credentials.token"),
    ('{"name": "gh", "connection_type": "github", "credentials": {"token": "a\\u0000b"}}', "credentials.token"),
    ('{"name": "gh", "connection_type": "github", "metadata": {"tags": ["ok", "x\\udc00"]}}', "metadata.tags.1"),
])
def test_connection_create_names_the_unstorable_field(root_client: APIClient, body: str, path: str) -> None:
    assert_names(send(root_client, "post", CONNECTIONS, body), path)
    assert not connection_services.Connection.objects.exists()


def test_connection_update_names_the_unstorable_field(root_client: APIClient) -> None:
    assert root_client.post(CONNECTIONS, github_connection(), format="json").status_code == 201
    response = send(root_client, "patch", f"{CONNECTIONS}/gh", '{"credentials": {"signing_secret": ' + LONE + "}}")
    assert_names(response, "credentials.signing_secret")


def test_trigger_parameters_and_conditions_name_the_field(root_client: APIClient) -> None:
    base = '{"name": "r", "event_type": "push", "workflow": "log_event", '
    assert_names(send(root_client, "post", TRIGGERS, base + '"parameters": {"message": ' + LONE + "}}"),
                 "parameters.message")
    assert_names(send(root_client, "post", TRIGGERS, base + '"conditions": [{"path": "a", "op": "eq", "value": '
                      + LONE + "}]}"), "conditions.0.value")


def test_mcp_options_name_the_field(root_client: APIClient) -> None:
    response = send(root_client, "post", INSTALL, '{"entry_id": "memory", "options": {"path": ' + LONE + "}}")
    assert_names(response, "options.path")


def test_a_key_with_a_lone_surrogate_is_named_escaped(root_client: APIClient) -> None:
    response = send(root_client, "post", CONNECTIONS, '{"metadata": {"k\\ud800": 1}}')
    assert_names(response, "metadata.k\\ud800")
    assert "the key must not contain a lone surrogate" in response.json()["detail"]


@pytest.mark.parametrize("url", [CONNECTIONS, TRIGGERS, INSTALL])
@pytest.mark.parametrize("depth", [MAX_NESTING + 1, 100_000])
def test_deep_nesting_is_400_before_any_parser_recurses(root_client: APIClient, url: str, depth: int) -> None:
    body = '{"metadata": {"a": ' + "[" * depth + "]" * depth + "}}"
    response = send(root_client, "post", url, body)
    assert response.status_code == 400 and response.json()["code"] == "json_too_deep"


def test_nesting_within_the_limit_is_parsed(root_client: APIClient) -> None:
    depth = MAX_NESTING - 3
    body = json.dumps({**github_connection(), "metadata": {"a": json.loads("[" * depth + "]" * depth)}})
    assert send(root_client, "post", CONNECTIONS, body).status_code == 201


def test_a_number_beyond_a_double_is_named(root_client: APIClient) -> None:
    response = send(root_client, "post", CONNECTIONS, '{"metadata": {"n": 1e400}}')
    assert_names(response, "metadata.n", code="invalid_number")


@pytest.mark.parametrize("body", [b"{", b'{"a": NaN}', b"\xff\xfe", b'{"a": Infinity}'])
def test_malformed_json_is_a_parse_error(root_client: APIClient, body: bytes) -> None:
    response = send(root_client, "post", CONNECTIONS, body)
    assert response.status_code == 400 and response.json()["code"] == "parse_error"


# --- secret fields take PEM keys and service-account JSON ---------------------------------

PEM = ("-----BEGIN PRIVATE KEY-----\n" + "\n".join(["A" * 64] * 300) + "\n-----END PRIVATE KEY-----\n")


def test_a_secret_of_16_kb_and_more_is_accepted(root_client: APIClient) -> None:
    assert len(PEM) > 16 * 1024
    created = root_client.post(CONNECTIONS, {**github_connection(), "credentials": {"token": PEM}}, format="json")
    assert created.status_code == 201, created.content
    connection = connection_services.Connection.objects.get(name="gh")
    assert connection_services.connection_secrets(connection)["token"] == PEM


def test_a_secret_past_the_limit_is_422(root_client: APIClient) -> None:
    response = root_client.post(CONNECTIONS, {**github_connection(), "credentials": {"token": "x" * 32_769}},
                                format="json")
    assert response.status_code == 422
    assert response.json()["errors"]["credentials.token"] == ["must be at most 32768 characters"]


# --- the parser and the JSON helpers on their own ---------------------------------------


def parse(raw: bytes) -> Any:
    return JSONInputParser().parse(io.BytesIO(raw), "application/json", {})


def test_parser_returns_plain_json_unchanged() -> None:
    assert parse(b'{"a": [1, 2.5, "caf\\u00e9", {"b": null}], "pair": "\\ud83d\\ude00"}') == {
        "a": [1, 2.5, "café", {"b": None}], "pair": "\U0001f600"}


def test_parser_errors_are_400s() -> None:
    with pytest.raises(BadRequest) as refused:
        parse(b'{"x": {"y": ["\\u0000"]}}')
    assert refused.value.errors == {"x.y.0": ["must not contain NUL characters (\\u0000)"]}
    with pytest.raises(ParseError):
        parse(b"[1,")


def test_nesting_bound_counts_containers_not_brackets_in_strings() -> None:
    text = json.dumps({"s": "[[[[{{{{" * 100, "t": "\\\"[[["})
    assert not nesting_exceeds(text, json.loads(text), 3) and not nesting_exceeds(text.encode(), json.loads(text), 3)
    deep = "[" * 5 + "]" * 5
    assert nesting_exceeds(deep, json.loads(deep), 4) and not nesting_exceeds(deep, json.loads(deep), 5)
    wide = json.dumps([[1], {"a": [2]}, [[3]]] * 100)  # many brackets, three levels
    assert not nesting_exceeds(wide, json.loads(wide), 4) and nesting_exceeds(wide, json.loads(wide), 2)


def test_unstorable_path_is_iterative() -> None:
    deep: Any = "\x00"
    for _ in range(50_000):
        deep = [deep]
    assert unstorable_path({"a": deep}) == ("a" + ".0" * 50_000, "must not contain NUL characters (\\u0000)")
    assert unstorable_path({"a": ["fine", {"b": 1}]}) is None


def test_storable_copy_escapes_and_leaves_plain_values_alone() -> None:
    plain = {"a": ["x", {"b": 1}]}
    assert storable_copy(plain) == (plain, False) and storable_copy(plain)[0] is plain
    assert storable_copy({"a\x00": ["\ud800", "ok"]}) == ({"a\\u0000": ["\\ud800", "ok"]}, True)



# --- the same rule for callers that are not the API (the admin, the commands) -------------


def test_services_refuse_unstorable_metadata_naming_the_path() -> None:
    from synthorg.errors import ValidationFailed

    credentials = {"token": "ghp_x"}
    with pytest.raises(ValidationFailed) as refused:
        connection_services.connection_create(name="gh", connection_type="github", credentials=credentials,
                                              metadata={"team": {"lead": "a\x00b"}})
    assert "metadata.team.lead" in refused.value.errors
    deep: Any = 1
    for _ in range(64):
        deep = [deep]
    with pytest.raises(ValidationFailed) as refused:
        connection_services.connection_create(name="gh", connection_type="github", credentials=credentials,
                                              metadata={"a": deep})
    assert refused.value.errors == {"metadata": ["must not nest deeper than 63 levels"]}
    connection_services.connection_create(name="gh", connection_type="github", credentials=credentials)
    with pytest.raises(ValidationFailed):
        connection_services.connection_update(name="gh", data={"metadata": {"k\ud800": 1}})
    assert connection_services.Connection.objects.get(name="gh").metadata == {}


def test_trigger_rules_refuse_unstorable_conditions_and_parameters_outside_the_api() -> None:
    from synthorg.errors import ValidationFailed
    from webhooks import services as webhook_services

    with pytest.raises(ValidationFailed) as refused:
        webhook_services.trigger_rule_create(data={"name": "r", "event_type": "push", "workflow": "log_event",
                                                   "parameters": {"message": "a\ud800"}})
    assert refused.value.errors["parameters"][0].startswith("parameters.message: must not contain a lone surrogate")
    with pytest.raises(ValidationFailed) as refused:
        webhook_services.trigger_rule_create(data={"name": "r", "event_type": "push", "workflow": "log_event",
                                                   "conditions": [{"path": "a", "op": "eq", "value": "\x00"}]})
    assert "conditions" in refused.value.errors
