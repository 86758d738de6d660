from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from providers.models import ProviderConfig
from synthorg.models import AuditEvent
from tests.providers.conftest import CANARY, CONNECTION_CANARY

pytestmark = pytest.mark.django_db

LIST = "/api/v1/providers"


def _detail(name: str) -> str:
    return f"/api/v1/providers/{name}"


def _client_with_perms(django_user_model: Any, *codenames: str) -> APIClient:
    user = django_user_model.objects.create_user(username="perm-holder", password="pw-perm-123")
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="providers", codename__in=codenames))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


def test_create_with_embedded_key_never_returns_it(operator_client: Any) -> None:
    response = operator_client.post(LIST, {"name": "main", "driver": "anthropic", "model": "claude",
                                        "api_key": CANARY}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["embedded_fields"] == ["api_key"]
    assert body["credentials_source"] == "embedded"
    assert body["connection_name"] is None
    assert "api_key" not in body and CANARY not in response.content.decode()
    assert AuditEvent.objects.get(action="provider.create").actor_name == "operator"


def test_create_referencing_connection(operator_client: Any, make_connection: Any) -> None:
    make_connection()
    response = operator_client.post(LIST, {"name": "main", "driver": "openai", "connection_name": "llm-gateway"},
                                 format="json")
    assert response.status_code == 201
    assert response.json()["connection_name"] == "llm-gateway"
    assert response.json()["credentials_source"] == "connection"


@pytest.mark.parametrize("payload", [
    {"driver": "openai"},                                   # name missing
    {"name": 5, "driver": "openai"},                        # wrong type
    {"name": "main", "driver": "openai", "api_key": 12},
    {"name": "main", "driver": "openai", "oauth_scopes": "read"},
    [],
])
def test_create_malformed_is_400(operator_client: Any, payload: Any) -> None:
    response = operator_client.post(LIST, payload, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid"


def test_create_breaking_rule_is_422_naming_field(operator_client: Any) -> None:
    response = operator_client.post(LIST, {"name": "main", "driver": "openai", "base_url": "gopher://x"},
                                 format="json")
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "validation_failed" and "base_url" in body["errors"]
    assert body["detail"].startswith("base_url:")


def test_create_unknown_connection_is_422(operator_client: Any) -> None:
    response = operator_client.post(LIST, {"name": "main", "driver": "openai", "connection_name": "ghost"},
                                 format="json")
    assert response.status_code == 422
    assert "no connection named 'ghost'" in response.json()["errors"]["connection_name"][0]


def test_create_duplicate_is_409(operator_client: Any, make_provider: Any) -> None:
    make_provider(name="main")
    response = operator_client.post(LIST, {"name": "MAIN", "driver": "openai"}, format="json")
    assert response.status_code == 409
    assert response.json()["code"] == "provider_name_taken"


def test_unauthenticated_is_401(api_client: Any, make_provider: Any) -> None:
    make_provider(name="main")
    assert api_client.get(LIST).status_code == 401
    assert api_client.get(_detail("main")).status_code == 401
    assert api_client.post(_detail("main") + "/resolve-check").status_code == 401


def test_reader_may_read_but_not_write_is_403(user_client: Any, make_provider: Any) -> None:
    make_provider(name="main")
    assert user_client.get(LIST).status_code == 200
    assert user_client.get(_detail("main")).status_code == 200
    assert user_client.post(LIST, {"name": "x", "driver": "openai"}, format="json").status_code == 403
    assert user_client.patch(_detail("main"), {"model": "y"}, format="json").status_code == 403
    assert user_client.delete(_detail("main")).status_code == 403
    assert user_client.post(_detail("main") + "/resolve-check").status_code == 403
    assert ProviderConfig.objects.get().model == "gpt-4o"


def test_model_permission_allows_writes(django_user_model: Any) -> None:
    client = _client_with_perms(django_user_model, "add_providerconfig", "change_providerconfig")
    assert client.post(LIST, {"name": "main", "driver": "openai"}, format="json").status_code == 201
    assert client.patch(_detail("main"), {"model": "y"}, format="json").status_code == 200
    assert client.post(_detail("main") + "/resolve-check").status_code == 200
    assert client.delete(_detail("main")).status_code == 403


def test_unknown_provider_is_404(operator_client: Any) -> None:
    for response in (operator_client.get(_detail("ghost")), operator_client.patch(_detail("ghost"), {}, format="json"),
                     operator_client.delete(_detail("ghost")), operator_client.post(_detail("ghost") + "/resolve-check")):
        assert response.status_code == 404
        assert response.json()["code"] == "provider_not_found"


@pytest.mark.parametrize("path_name", ["bad%00name", "main%0A", "-x", "x" * 200])
def test_impossible_name_in_path_is_404(operator_client: Any, make_provider: Any, path_name: str) -> None:
    make_provider(name="main")
    response = operator_client.get(_detail(path_name))
    assert response.status_code == 404
    # A NUL never reaches the view: synthorg.middleware.NulCharacterMiddleware answers first.
    assert response.json()["code"] == ("not_found" if "%00" in path_name else "provider_not_found")


def test_patch_migrates_to_connection(operator_client: Any, make_connection: Any, make_provider: Any) -> None:
    make_connection()
    make_provider(name="main", api_key=CANARY)
    response = operator_client.patch(_detail("main"), {"connection_name": "llm-gateway", "api_key": None},
                                  format="json")
    assert response.status_code == 200
    body = response.json()
    assert body["connection_name"] == "llm-gateway" and body["embedded_fields"] == []
    check = operator_client.post(_detail("main") + "/resolve-check").json()
    assert check == {"resolvable": True, "kind": "bearer", "source": "connection:llm-gateway",
                     "deprecated": False, "code": "resolved", "detail": "Credentials resolve from "
                     "connection:llm-gateway."}


def test_patch_conflicting_embedded_and_connection_is_422(operator_client: Any, make_connection: Any,
                                                          make_provider: Any) -> None:
    make_connection()
    make_provider(name="main", api_key=CANARY)
    response = operator_client.patch(_detail("main"), {"connection_name": "llm-gateway"}, format="json")
    assert response.status_code == 422
    assert "api_key" in response.json()["errors"]
    assert CANARY not in response.content.decode()


def test_patch_malformed_is_400(operator_client: Any, make_provider: Any) -> None:
    make_provider(name="main")
    assert operator_client.patch(_detail("main"), {"model": 3}, format="json").status_code == 400


def test_delete_is_204(operator_client: Any, make_provider: Any) -> None:
    make_provider(name="main")
    assert operator_client.delete(_detail("main")).status_code == 204
    assert not ProviderConfig.objects.exists()


def test_resolve_check_failure_is_200_with_code(operator_client: Any, make_provider: Any) -> None:
    make_provider(name="main")
    response = operator_client.post(_detail("main") + "/resolve-check")
    assert response.status_code == 200
    assert response.json()["resolvable"] is False and response.json()["code"] == "provider_no_credentials"
    assert AuditEvent.objects.get(action="provider.resolve_check").outcome == "failure"


def test_resolve_check_never_returns_value(operator_client: Any, make_connection: Any, make_provider: Any) -> None:
    make_connection()
    make_provider(name="a", connection_name="llm-gateway")
    make_provider(name="b", api_key=CANARY)
    for name in ("a", "b"):
        text = operator_client.post(_detail(name) + "/resolve-check").content.decode()
        assert CANARY not in text and CONNECTION_CANARY not in text


def test_no_secret_in_any_response(operator_client: Any, make_connection: Any, make_provider: Any) -> None:
    make_connection()
    make_provider(name="a", connection_name="llm-gateway")
    make_provider(name="b", api_key=CANARY, oauth_client_id="cid", oauth_client_secret=CANARY + "-oauth",
                  oauth_token_url="https://idp.example.test/token", oauth_scopes=["llm"])
    bodies = [operator_client.get(LIST), operator_client.get(_detail("a")), operator_client.get(_detail("b")),
              operator_client.patch(_detail("b"), {"model": "m2"}, format="json"),
              operator_client.get("/api/schema/"),
              operator_client.get("/api/v1/audit-events")]
    for response in bodies:
        assert response.status_code == 200
        text = response.content.decode()
        assert CANARY not in text and CONNECTION_CANARY not in text
    row = json.dumps(list(ProviderConfig.objects.values()), default=str)
    assert CANARY not in row


def test_list_is_paginated_and_filtered(operator_client: Any, make_connection: Any, make_provider: Any) -> None:
    make_connection()
    for index in range(3):
        make_provider(name=f"p{index}", driver="anthropic" if index else "openai")
    make_provider(name="via-conn", connection_name="llm-gateway")
    page = operator_client.get(LIST + "?limit=2").json()
    assert page["count"] == 4 and len(page["results"]) == 2 and page["next"]
    assert [p["name"] for p in operator_client.get(LIST + "?driver=anthropic").json()["results"]] == ["p1", "p2"]
    assert [p["name"] for p in operator_client.get(LIST + "?connection_name=LLM-gateway").json()["results"]] == [
        "via-conn"]


@pytest.mark.parametrize("count", [3, 30])
def test_list_query_count_is_constant(operator_client: Any, make_connection: Any, make_provider: Any,
                                      django_assert_num_queries: Any, count: int) -> None:
    for index in range(count):
        make_connection(name=f"c{index}")
        make_provider(name=f"p{index}", connection_name=f"c{index}")
    operator_client.get(LIST)  # warm the token/user lookups path once
    # token + user, the user's and their groups' permissions (2), count, page (connections joined):
    # the same for any page size.
    with django_assert_num_queries(5):
        response = operator_client.get(LIST + "?limit=500")
    assert len(response.json()["results"]) == count
