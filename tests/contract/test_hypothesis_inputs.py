"""Issue 13, part 1: arbitrary Unicode and nesting never give a 5xx.

Two properties, with strings drawn from all of Unicode plus NUL, lone surrogates and
non-characters, and nesting from flat to 100,000 deep:

* the webhook receiver: a correctly signed body never gives a 5xx, and a body that parses (a
  JSON object within `webhooks.payloads.MAX_NESTING`, or a form) is stored, raw bytes intact;
* every write endpoint of the API, enumerated from the URLconf (POST, PUT, PATCH of every DRF
  view under ``/api/``), as a superuser: never a 5xx.
"""
from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from integrations import services as connection_services
from tests.webhooks.receiving import github_headers, make_github, make_slack, post, slack_headers
from webhooks import services as webhook_services
from webhooks.models import Delivery
from webhooks.payloads import MAX_NESTING

pytestmark = pytest.mark.django_db

FEW = hypothesis_settings(max_examples=60, deadline=None, derandomize=True,
               suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                      HealthCheck.data_too_large])

# The characters that broke things, and some that must not: NUL, both halves of a pair alone,
# non-characters, the last code point, JSON's own syntax.
NASTY = ["\x00", "\ud800", "\udbff", "\udc00", "\udfff", "\ufffe", "\uffff", "\ufdd0", "\U0010ffff",
         "\U0001f600", "\u2028", "\\", '"', "[", "{", "%", "0", "é", "a"]
texts = st.one_of(
    st.text(max_size=20),
    st.text(alphabet=st.sampled_from(NASTY), max_size=12),
    st.lists(st.sampled_from([*NASTY, "%00", "\\u0000", "\\ud800"]), max_size=6).map("".join),
    st.text(alphabet=st.characters(exclude_categories=()), max_size=12),  # surrogates included
)
scalars = st.one_of(st.none(), st.booleans(), st.integers(), texts,
                    st.floats(allow_nan=False, allow_infinity=False))
json_values = st.recursive(scalars, lambda children: st.one_of(
    st.lists(children, max_size=4), st.dictionaries(texts, children, max_size=4)), max_leaves=20)
# The API's field names, so the nasty values reach the serializers and services too.
FIELD_NAMES = ["name", "connection_type", "credentials", "metadata", "rate_limit", "health_check", "event_type",
               "workflow", "parameters", "conditions", "connection", "entry_id", "connection_name", "options",
               "grant_type", "scopes", "secret", "previous_valid_until", "username", "password", "token",
               "enabled", "provider", "api_key", "base_url", "model"]
objects = st.dictionaries(st.one_of(st.sampled_from(FIELD_NAMES), texts), json_values, max_size=6)


def nested(depth: int, opener: str = "[") -> str:
    closer = {"[": "]", "{": "}"}[opener]
    inner = '"a":' if opener == "{" else ""
    return (opener + inner) * depth + ("1" if opener == "{" else "") + closer * depth


def encode(value: Any, ascii_only: bool) -> bytes:
    if ascii_only:
        return json.dumps(value).encode()  # lone surrogates become \udXXX escapes: valid JSON
    # Raw UTF-8 with lone surrogates encoded as such: not UTF-8, so not JSON.
    return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")


json_bodies = st.one_of(
    st.builds(encode, objects, st.booleans()),
    st.builds(encode, json_values, st.just(True)),
    st.builds(lambda d, o: ('{"deep": ' + nested(d, o) + "}").encode(),
              st.one_of(st.integers(1, 300), st.sampled_from([MAX_NESTING - 1, MAX_NESTING, 5_000, 100_000])),
              st.sampled_from(["[", "{"])),
)


def parses(body: bytes) -> bool:
    """The receiver's promise: a JSON object that is UTF-8, strict JSON and within the nesting bound."""
    try:
        value = json.loads(body.decode("utf-8"), parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))
    except (ValueError, RecursionError):
        return False
    return isinstance(value, dict) and depth_of(value) <= MAX_NESTING


def depth_of(value: Any) -> int:
    depth, stack = 0, [(value, 1)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, dict | list):
            depth = max(depth, level)
            stack.extend((child, level + 1) for child in (node.values() if isinstance(node, dict) else node))
    return depth


@pytest.fixture
def unlimited(settings: Any) -> None:
    # Hundreds of deliveries from one address to one connection: the limits are not under test.
    settings.SYNTHORG_CONFIG_OVERRIDES = {"webhooks": {"rate_limit_rpm": 0, "flood_rpm_per_ip": 0}}


def test_receiver_stores_every_signed_body_that_parses(unlimited: None) -> None:
    make_github()
    client = Client(raise_request_exception=False)

    @FEW
    @given(body=json_bodies)
    def check(body: bytes) -> None:
        response = post(client, "gh", "auto", body, github_headers(body))
        assert response.status_code < 500, (response.status_code, body[:200])
        if parses(body):
            assert response.status_code in (200, 202), (response.status_code, response.content, body[:200])
            delivery = Delivery.objects.get(pk=response.json()["delivery_id"])
            assert bytes(delivery.body) == body
            assert webhook_services.delivery_payload_as_sent(delivery) == json.loads(body)
        else:
            assert response.status_code == 400, (response.status_code, body[:200])

    check()


def test_receiver_stores_every_signed_form(unlimited: None) -> None:
    make_slack()
    client = Client(raise_request_exception=False)

    @FEW
    @given(fields=st.dictionaries(texts.filter(bool), texts, min_size=1, max_size=5))
    def check(fields: dict[str, str]) -> None:
        body = urlencode(fields, encoding="utf-8", errors="surrogatepass").encode()
        response = post(client, "sl", "auto", body, slack_headers(body),
                        content_type="application/x-www-form-urlencoded")
        assert response.status_code < 500, (response.status_code, body[:200])
        if set(fields) != {"payload"}:  # a lone `payload` field must itself be JSON
            assert response.status_code in (200, 202), (response.status_code, response.content)
            delivery = Delivery.objects.get(pk=response.json()["delivery_id"])
            assert bytes(delivery.body) == body

    check()


# --- every write endpoint of the API -------------------------------------------------------

_PARAM = re.compile(r"<(?:(?P<converter>\w+):)?(?P<name>\w+)>")


def _walk(patterns: list[Any], prefix: str = "") -> Iterator[tuple[str, URLPattern]]:
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _walk(pattern.url_patterns, prefix + str(pattern.pattern))
        else:
            yield prefix + str(pattern.pattern), pattern


def write_endpoints() -> list[tuple[str, str]]:
    """(method, route) for every DRF view under /api/ that takes a body."""
    found = []
    for route, pattern in _walk(get_resolver().url_patterns):
        view = getattr(pattern.callback, "cls", None)
        if view is None or not route.startswith("api/"):
            continue  # Django views: the admin (forms), the webhook receiver (tested above)
        for method in ("post", "put", "patch"):
            if hasattr(view, method):
                found.append((method, route))
    return found


WRITE_ENDPOINTS = write_endpoints()
# Path values that exist where they can (a connection, a rule), so bodies reach the services;
# an MCP entry that is not installed, so nothing is ever launched.
PATH_VALUES = {"name": "gh", "pk": "1", "id": "1", "entry_id": "not-installed"}


def test_the_enumeration_finds_the_known_write_endpoints() -> None:
    routes = {route for _method, route in WRITE_ENDPOINTS}
    assert {"api/v1/connections", "api/v1/webhooks/triggers", "api/v1/integrations/mcp/catalog/install",
            "api/v1/connections/<str:name>"} <= routes
    assert len(WRITE_ENDPOINTS) >= 10


@pytest.mark.parametrize(("method", "route"), WRITE_ENDPOINTS, ids=[f"{m} {r}" for m, r in WRITE_ENDPOINTS])
def test_write_endpoint_never_answers_5xx(method: str, route: str, superuser: Any) -> None:
    make_github()
    rule = webhook_services.trigger_rule_create(data={"name": "r", "event_type": "push", "workflow": "log_event"})
    assert connection_services.Connection.objects.filter(name="gh").exists()
    url = "/" + _PARAM.sub(lambda m: str(rule.pk) if m["name"] in ("pk", "id")
                           else PATH_VALUES.get(m["name"], "x"), route)
    client = APIClient()
    client.force_authenticate(superuser)
    client.raise_request_exception = False

    @hypothesis_settings(max_examples=25, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                     HealthCheck.data_too_large])
    @given(body=json_bodies)
    def check(body: bytes) -> None:
        response = getattr(client, method)(url, data=body, content_type="application/json")
        assert response.status_code < 500, (method, url, response.status_code, response.content[:300], body[:200])

    check()
