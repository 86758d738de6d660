"""The authorization request's own parameters are the service's alone (issue 12): an auth_url
carrying redirect_uri, state, a PKCE challenge, client_id, response_type or scope in its query
is refused (422 naming the field, at validation and again when the URL is built), and reserved
names in extra_authorization_params are matched case-insensitively."""
from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from rest_framework.test import APIClient

from integrations import services as connection_services
from integrations.models import Connection
from oauthflow import services
from oauthflow.models import OAuthState
from synthorg.errors import ValidationFailed

pytestmark = pytest.mark.django_db

AUTH = "http://127.0.0.1:9/authorize"  # loopback: the metadata look-up at start never leaves the machine
URL = "/api/v1/connections"


@pytest.fixture
def root_api(superuser: Any) -> APIClient:
    client = APIClient()
    client.force_authenticate(superuser)
    return client


def _credentials(**overrides: Any) -> dict[str, Any]:
    return {"client_id": "c", "client_secret": "s", "auth_url": AUTH, "token_url": "http://127.0.0.1:9/token",
            **overrides}


@pytest.mark.parametrize("query", [
    "redirect_uri=https://evil.example/cb", "state=attacker", "code_challenge=abc", "code_challenge_method=plain",
    "client_id=other", "response_type=token", "scope=admin", "Redirect_URI=https://evil.example/cb",
    "STATE=x", "redirect%5Furi=https://evil.example/cb", "tenant=acme&scope=admin",
])
def test_auth_url_with_a_reserved_parameter_is_422(root_api: APIClient, query: str) -> None:
    response = root_api.post(URL, {"name": "idp", "connection_type": "oauth_app",
                                   "credentials": _credentials(auth_url=f"{AUTH}?{query}")}, format="json")
    assert response.status_code == 422, response.content
    [rule] = response.json()["errors"]["credentials.auth_url"]
    assert rule.startswith("must not carry") and "in its query" in rule
    assert not Connection.objects.filter(name="idp").exists()


@pytest.mark.parametrize("name", ["redirect_uri", "Redirect_URI", "STATE", "Code_Challenge", " scope"])
def test_reserved_extra_authorization_params_are_422_whatever_the_case(root_api: APIClient, name: str) -> None:
    response = root_api.post(URL, {"name": "idp", "connection_type": "oauth_app", "credentials": _credentials(
        extra_authorization_params={"prompt": "consent", name: "x"})}, format="json")
    assert response.status_code == 422, response.content
    assert response.json()["errors"]["credentials.extra_authorization_params"][0].startswith("must not set")


def test_other_query_parameters_are_kept_and_ours_appear_once() -> None:
    connection_services.connection_create(name="idp", connection_type="oauth_app", credentials=_credentials(
        auth_url=f"{AUTH}?tenant=acme", extra_authorization_params={"prompt": "consent"}))
    started = services.authorization_start(connection_name="idp")
    names = [name for name, _ in parse_qsl(urlsplit(started.authorization_url).query)]
    assert names.count("tenant") == 1 and names.count("prompt") == 1
    for reserved in ("redirect_uri", "state", "client_id", "response_type", "code_challenge"):
        assert names.count(reserved) == 1, reserved


@pytest.mark.parametrize(("field", "value"), [
    ("auth_url", f"{AUTH}?redirect_uri=https://evil.example/cb"),
    ("auth_url", f"{AUTH}?State=attacker"),
    ("extra_authorization_params", {"Redirect_URI": "https://evil.example/cb"}),
])
def test_a_stored_reserved_parameter_is_refused_when_the_url_is_built(root_api: APIClient, field: str,
                                                                      value: Any) -> None:
    connection = connection_services.connection_create(name="idp", connection_type="oauth_app",
                                                       credentials=_credentials())
    # A row written before the rule: no validator saw it.
    Connection.objects.filter(pk=connection.pk).update(config={**connection.config, field: value})

    with pytest.raises(ValidationFailed) as caught:
        services.authorization_start(connection_name="idp")
    assert list(caught.value.errors) == [f"credentials.{field}"]

    response = root_api.post("/api/v1/oauth/initiate", {"connection_name": "idp"}, format="json")
    assert response.status_code == 422, response.content
    assert f"credentials.{field}" in response.json()["errors"]
    assert not OAuthState.objects.filter(connection=connection).exists()
