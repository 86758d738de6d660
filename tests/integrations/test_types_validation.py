"""Every type's fields, defaults and rules, through the same service the API and admin use."""
from __future__ import annotations

import os
import tempfile
from typing import Any

import pytest

from integrations import services
from integrations.models import Connection, SecretRecord
from integrations.types import REGISTRY, get_type
from synthorg.errors import ValidationFailed

pytestmark = pytest.mark.django_db

VALID: dict[str, dict[str, Any]] = {
    "github": {"token": "ghp_x"},
    "slack": {"token": "xoxb-1"},
    "smtp": {"host": "smtp.example.com"},
    "database": {"dialect": "postgres", "host": "db.internal", "database": "app"},
    "generic_http": {"base_url": "https://api.example.com"},
    "oauth_app": {"client_id": "cid", "client_secret": "cs", "token_url": "https://idp.example.com/token"},
}


def create(connection_type: str, credentials: dict[str, Any], name: str = "c1") -> Connection:
    return services.connection_create(name=name, connection_type=connection_type, credentials=credentials)


def problems(connection_type: str, credentials: dict[str, Any]) -> dict[str, list[str]]:
    with pytest.raises(ValidationFailed) as caught:
        create(connection_type, credentials)
    assert caught.value.status_code == 422
    assert not Connection.objects.exists() and not SecretRecord.objects.exists()
    return caught.value.errors or {}


def test_registry_holds_the_six_seed_types() -> None:
    assert set(REGISTRY) == set(VALID)
    with pytest.raises(KeyError):
        get_type("ftp")


@pytest.mark.parametrize(("connection_type", "secrets"), [
    ("github", {"token", "signing_secret"}),
    ("slack", {"token", "signing_secret"}),
    ("smtp", {"password"}),
    ("database", {"password"}),
    ("generic_http", {"token", "api_key", "signing_secret"}),
    ("oauth_app", {"client_secret"}),
])
def test_secret_fields_are_declared(connection_type: str, secrets: set[str]) -> None:
    assert set(get_type(connection_type).secret_field_names) == secrets


@pytest.mark.parametrize(("connection_type", "required"), [
    ("github", {"token"}),
    ("slack", {"token"}),
    ("smtp", {"host"}),
    ("database", {"dialect", "database"}),
    ("generic_http", {"base_url"}),
    ("oauth_app", {"client_id", "client_secret", "token_url"}),
])
def test_required_fields_are_reported_together(connection_type: str, required: set[str]) -> None:
    assert {f.name for f in get_type(connection_type).fields if f.required} == required
    errors = problems(connection_type, {})
    assert errors == {f"credentials.{name}": ["is required"] for name in required}


@pytest.mark.parametrize("connection_type", sorted(VALID))
def test_minimal_valid_credentials_create_with_defaults(connection_type: str) -> None:
    connection = create(connection_type, VALID[connection_type])
    ctype = get_type(connection_type)
    for spec in ctype.fields:
        if not spec.secret and spec.name not in VALID[connection_type] and spec.default is not None:
            assert connection.config[spec.name] == spec.default
    assert all(name not in connection.config for name in ctype.secret_field_names)
    assert connection.secret_fields == sorted(k for k in VALID[connection_type] if k in ctype.secret_field_names)


def test_defaults_are_the_documented_ones() -> None:
    assert create("github", {"token": "t"}, "a").config == {"api_url": "https://api.github.com"}
    assert create("smtp", {"host": "mx"}, "b").config == {"host": "mx", "port": 587, "use_tls": True}
    http = create("generic_http", {"base_url": "https://h"}, "c").config
    assert http["auth_header"] == "Authorization" and http["auth_scheme"] == "Bearer"
    assert http["signature_header"] == "X-Signature" and http["signature_encoding"] == "hex"
    assert create("oauth_app", VALID["oauth_app"], "d").config["scopes"] == []


RULES = [
    # (type, credentials over the valid minimum, field, words of the rule)
    ("github", {"token": 123}, "token", "must be a string"),
    ("github", {"token": ""}, "token", "must not be empty"),
    ("github", {"api_url": "http://ghe.example.com"}, "api_url", "must use https://"),
    ("github", {"api_url": "not a url"}, "api_url", "absolute http:// or https:// URL"),
    ("github", {"api_url": "https://user:pw@ghe.example.com"}, "api_url", "must not carry credentials"),
    ("github", {"token": "x" * 32_769}, "token", "at most 32768 characters"),
    ("smtp", {"host": "h" * 4097}, "host", "at most 4096 characters"),
    ("slack", {"signing_secret": 5}, "signing_secret", "must be a string"),
    ("slack", {"bot": "x"}, "bot", "is not a field of the slack type"),
    ("smtp", {"port": 0}, "port", "between 1 and 65535"),
    ("smtp", {"port": "25"}, "port", "must be an integer"),
    ("smtp", {"port": True}, "port", "must be an integer"),
    ("smtp", {"use_tls": "yes"}, "use_tls", "must be a boolean"),
    ("smtp", {"host": "a b"}, "host", "host name or IP address"),
    # The password would go as AUTH PLAIN in clear text (issue 12).
    ("smtp", {"host": "mx", "username": "u", "password": "p", "use_tls": False}, "use_tls",
     "AUTH sends the password in clear text"),
    ("smtp", {"username": "u"}, "password", "username and password must be given together"),
    ("smtp", {"password": "p"}, "username", "username and password must be given together"),
    ("database", {"dialect": "oracle"}, "dialect", "must be one of postgres, mysql, mariadb, sqlite"),
    ("database", {"host": None}, "host", "is required for the postgres dialect"),
    ("database", {"dialect": "sqlite", "host": "db"}, "host", "is not used with the sqlite dialect"),
    ("database", {"port": 70000}, "port", "between 1 and 65535"),
    ("generic_http", {"base_url": "ftp://files.example.com"}, "base_url", "http:// or https://"),
    # The token goes to base_url: plain http only to loopback (issue 12 §2).
    ("generic_http", {"base_url": "http://internal:8080"}, "base_url", "must use https://"),
    ("generic_http", {"base_url": "http://h"}, "base_url", "must use https://"),
    ("generic_http", {"token": "t", "api_key": "k"}, "api_key", "either token or api_key"),
    ("generic_http", {"auth_header": "Bad Header"}, "auth_header", "HTTP header name"),
    ("generic_http", {"signature_encoding": "base32"}, "signature_encoding", "must be one of hex, base64"),
    ("generic_http", {"signature_scheme": "standard_webhooks", "signing_secret": "abc"}, "signing_secret",
     "starts with whsec_"),
    ("oauth_app", {"token_url": "http://idp.example.com/token"}, "token_url", "must use https://"),
    ("oauth_app", {"auth_url": "http://idp.example.com/auth"}, "auth_url", "must use https://"),
    ("oauth_app", {"device_authorization_url": "http://idp.example.com/device"}, "device_authorization_url",
     "must use https://"),
    ("oauth_app", {"scopes": "openid email"}, "scopes", "a list of strings"),
    ("oauth_app", {"scopes": ["openid", 3]}, "scopes", "a list of strings"),
    ("oauth_app", {"token_endpoint_auth_method": "private_key_jwt"}, "token_endpoint_auth_method",
     "must be one of"),
    ("oauth_app", {"extra_authorization_params": {"prompt": 1}}, "extra_authorization_params",
     "an object of strings"),
    ("oauth_app", {"pkce": False}, "pkce", "pkce_required"),
]


@pytest.mark.parametrize(("connection_type", "overrides", "field", "rule"), RULES,
                         ids=[f"{r[0]}-{r[2]}-{i}" for i, r in enumerate(RULES)])
def test_rule_is_reported_naming_field_and_rule(connection_type: str, overrides: dict[str, Any], field: str,
                                                rule: str) -> None:
    errors = problems(connection_type, {**VALID[connection_type], **overrides})
    assert any(rule in message for message in errors.get(f"credentials.{field}", [])), errors


@pytest.mark.parametrize(("connection_type", "credentials"), [
    # Under the test run's allowed root (tests/settings.py); paths: tests/catalog/test_paths.py.
    ("database", {"dialect": "sqlite", "database": os.path.join(os.path.realpath(tempfile.gettempdir()), "app.db")}),
    ("database", {"dialect": "mysql", "host": "10.0.0.5", "port": 3306, "username": "u", "password": "p",
                  "database": "app"}),
    ("smtp", {"host": "mx", "username": "u", "password": "p", "use_tls": True, "port": 465}),
    ("smtp", {"host": "mx", "use_tls": False, "port": 25}),  # no password: nothing secret in clear
    ("smtp", {"host": "127.0.0.1", "username": "u", "password": "p", "use_tls": False}),
    ("smtp", {"host": "localhost", "username": "u", "password": "p", "use_tls": False}),
    ("generic_http", {"base_url": "https://internal:8080", "api_key": "k", "auth_header": "X-Api-Key",
                      "auth_scheme": ""}),
    ("generic_http", {"base_url": "http://127.0.0.1:8080", "token": "t"}),
    ("generic_http", {"base_url": "https://h", "signature_scheme": "standard_webhooks",
                      "signing_secret": "whsec_abc"}),
    ("oauth_app", {**VALID["oauth_app"], "token_url": "http://127.0.0.1:9000/token",
                   "auth_url": "http://localhost:9000/auth", "scopes": ["openid"]}),
    ("github", {"token": "t", "api_url": "http://localhost:8080/api"}),
])
def test_edge_values_that_are_allowed(connection_type: str, credentials: dict[str, Any]) -> None:
    assert create(connection_type, credentials).pk


def test_pkce_may_be_off_when_not_required(integrations_config: Any) -> None:
    integrations_config({"oauth": {"pkce_required": False}})
    assert create("oauth_app", {**VALID["oauth_app"], "pkce": False}).config["pkce"] is False


def test_credential_field_check_validates_one_field() -> None:
    assert services.credential_field_check("smtp", "port", 99999) == ["must be a port number between 1 and 65535"]
    assert services.credential_field_check("smtp", "port", 25) == []
    assert services.credential_field_check("smtp", "colour", "x") == ["unknown field"]
