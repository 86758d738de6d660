"""The receiver's rules, in the issue's order, through the real URL and view."""
from __future__ import annotations

import io
import json
import time
from typing import Any

import pytest
from django.test import Client

from integrations import services as connection_services
from tests.webhooks.receiving import (
    GITHUB_SECRET,
    github_body,
    github_headers,
    make_generic,
    make_github,
    make_slack,
    post,
    slack_headers,
)
from webhooks.models import Delivery, ReceiptSample, RejectionCount
from webhooks.receiver import UNAUTHORIZED_BODY
from webhooks.verifiers import sign_generic_hmac, sign_standard_webhooks

pytestmark = pytest.mark.django_db


@pytest.fixture
def client() -> Client:
    return Client(REMOTE_ADDR="203.0.113.7")


def test_signed_github_delivery_is_stored_then_answered_202(client: Client,
                                                            django_capture_on_commit_callbacks: Any) -> None:
    make_github()
    body = github_body()
    with django_capture_on_commit_callbacks(execute=True):
        response = post(client, "gh", "auto", body, github_headers(body, event="push", delivery="abc-1"))
    assert response.status_code == 202
    data = response.json()
    assert data["status"] == "accepted"
    delivery = Delivery.objects.get(pk=data["delivery_id"])
    assert bytes(delivery.body) == body
    assert delivery.event_type == "push" and delivery.event_name == "push"
    assert delivery.provider_delivery_id == "abc-1"
    assert delivery.matched_secret == "current"
    assert delivery.headers["x-github-event"] == "push"
    assert "x-hub-signature-256" not in delivery.headers
    # Published through the (eager) task and the bus.
    assert delivery.publish_state == Delivery.PublishState.PUBLISHED


def test_path_event_type_is_kept_when_not_auto(client: Client) -> None:
    make_github()
    body = github_body()
    response = post(client, "gh", "custom.kind", body, github_headers(body, event="push"))
    assert Delivery.objects.get(pk=response.json()["delivery_id"]).event_type == "custom.kind"


def test_github_ping_is_accepted_like_any_event(client: Client) -> None:
    make_github()
    body = json.dumps({"zen": "Design for failure.", "hook_id": 1}).encode()
    response = post(client, "gh", "auto", body, github_headers(body, event="ping"))
    assert response.status_code == 202
    assert Delivery.objects.get().event_type == "ping"


@pytest.mark.parametrize("case", ["unknown_connection", "no_secret", "no_verifier", "bad_signature",
                                  "missing_signature", "stale_slack"])
def test_every_authentication_failure_is_the_same_401(client: Client, case: str) -> None:
    make_github()
    make_github("nosecret", secret=None)
    connection_services.connection_create(name="db", connection_type="database", credentials={
        "dialect": "postgres", "host": "127.0.0.1", "database": "x", "username": "u", "password": "p"}
    ) if case == "no_verifier" else None
    make_slack()
    body = github_body()
    headers = github_headers(body)
    target = "gh"
    if case == "unknown_connection":
        target = "nobody"
    elif case == "no_secret":
        target = "nosecret"
    elif case == "no_verifier":
        target = "db"
    elif case == "bad_signature":
        headers = github_headers(body, secret="another secret")
    elif case == "missing_signature":
        headers = {"X-GitHub-Event": "push"}
    elif case == "stale_slack":
        target = "sl"
        headers = slack_headers(body, timestamp=int(time.time()) - 3600)
    response = post(client, target, "auto", body, headers)
    assert response.status_code == 401
    assert response.json() == dict(UNAUTHORIZED_BODY)
    assert not Delivery.objects.exists()
    assert RejectionCount.objects.filter(count=1).count() == 1
    assert response.content == post(client, "nobody", "auto", body, {}).content


def test_real_reason_goes_to_counters_and_sample_not_the_answer(client: Client) -> None:
    make_github()
    body = github_body()
    post(client, "gh", "auto", body, github_headers(body, secret="wrong"))
    sample = ReceiptSample.objects.get()
    assert sample.reason == "bad_signature" and sample.connection_name == "gh" and sample.status_code == 401
    assert RejectionCount.objects.get().reason == "bad_signature"


def test_unknown_connection_names_are_counted_under_one_row(client: Client) -> None:
    for index in range(5):
        post(client, f"made-up-{index}", "auto", b"{}", {})
    assert RejectionCount.objects.get().connection_name == ""
    assert RejectionCount.objects.get().count == 5


def test_rejection_samples_are_bounded_per_minute(client: Client, settings: Any) -> None:
    settings.SYNTHORG_CONFIG_OVERRIDES = {"webhooks": {"rejection_samples_per_minute": 2}}
    make_github()
    for _ in range(6):
        post(client, "gh", "auto", b"{}", {"X-Hub-Signature-256": "sha256=" + "0" * 64})
    assert RejectionCount.objects.get().count == 6
    assert ReceiptSample.objects.count() == 2


def test_duplicate_is_answered_200_and_publishes_nothing_new(client: Client) -> None:
    make_github()
    body = github_body()
    first = post(client, "gh", "auto", body, github_headers(body, delivery="one"))
    # GitHub's Redeliver: same body, a new X-GitHub-Delivery (unsigned) header.
    second = post(client, "gh", "auto", body, github_headers(body, delivery="two"))
    assert first.status_code == 202
    assert second.status_code == 200
    assert second.json() == {"status": "duplicate", "delivery_id": first.json()["delivery_id"]}
    assert Delivery.objects.count() == 1
    assert Delivery.objects.get().duplicates == 1


def test_github_replay_ten_minutes_later_is_a_duplicate(client: Client) -> None:
    make_github()
    body = github_body()
    headers = github_headers(body)
    assert post(client, "gh", "auto", body, headers).status_code == 202
    from webhooks.receiver import delivery_receive

    receipt = delivery_receive(connection_name="gh", path_event_type="auto", body=body, headers=headers,
                               content_type="application/json", remote_ip="203.0.113.7", now=time.time() + 600)
    assert receipt.status == 200 and receipt.body["status"] == "duplicate"


def test_slack_retry_with_fresh_timestamp_is_a_duplicate(client: Client) -> None:
    make_slack()
    body = json.dumps({"type": "event_callback", "event": {"type": "app_mention"}, "event_id": "Ev1"}).encode()
    now = int(time.time())
    assert post(client, "sl", "auto", body, slack_headers(body, timestamp=now - 30)).status_code == 202
    retry = post(client, "sl", "auto", body, {**slack_headers(body, timestamp=now), "X-Slack-Retry-Num": "1"})
    assert retry.status_code == 200 and retry.json()["status"] == "duplicate"
    delivery = Delivery.objects.get()
    assert delivery.event_type == "app_mention" and delivery.provider_delivery_id == "Ev1"


def test_slack_url_verification_answers_its_challenge(client: Client) -> None:
    make_slack()
    body = json.dumps({"token": "x", "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P",
                       "type": "url_verification"}).encode()
    response = post(client, "sl", "auto", body, slack_headers(body))
    assert response.status_code == 200
    assert response.json() == {"challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"}


def test_unsigned_url_verification_is_401(client: Client) -> None:
    make_slack()
    body = json.dumps({"challenge": "c", "type": "url_verification"}).encode()
    assert post(client, "sl", "auto", body, slack_headers(body, secret="not-the-secret")).status_code == 401


def test_slack_slash_command_form_body_is_accepted(client: Client) -> None:
    make_slack()
    body = b"token=gIkuvaNzQIHg97ATvDxqgjtO&team_id=T0001&command=%2Fweather&text=94070&user_name=Steve"
    response = post(client, "sl", "auto", body, slack_headers(body), content_type="application/x-www-form-urlencoded")
    assert response.status_code == 202
    delivery = Delivery.objects.get()
    assert delivery.payload["command"] == "/weather" and delivery.payload["text"] == "94070"
    assert delivery.event_type == "slash_command"


def test_slack_interactivity_payload_field_is_parsed(client: Client) -> None:
    make_slack()
    from urllib.parse import urlencode

    body = urlencode({"payload": json.dumps({"type": "block_actions", "actions": [{"value": "ok"}]})}).encode()
    response = post(client, "sl", "auto", body, slack_headers(body), content_type="application/x-www-form-urlencoded")
    assert response.status_code == 202
    delivery = Delivery.objects.get()
    assert delivery.payload["actions"][0]["value"] == "ok" and delivery.event_type == "block_actions"


@pytest.mark.parametrize("body", [b"[1, 2]", b"not json", b'"text"', b"\xff\xfe", b'{"a": NaN}', b""])
def test_body_that_is_not_an_object_is_400(client: Client, body: bytes) -> None:
    make_github()
    response = post(client, "gh", "auto", body, github_headers(body))
    assert response.status_code == 400
    assert response.json()["code"] == "malformed_body"
    assert not Delivery.objects.exists()


def test_content_length_over_limit_is_413_before_reading(client: Client, settings: Any) -> None:
    settings.SYNTHORG_CONFIG_OVERRIDES = {"webhooks": {"max_payload_bytes": 100}}
    make_github()
    body = github_body(filler="x" * 200)
    response = post(client, "gh", "auto", body, github_headers(body))
    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"


def test_body_over_djangos_own_upload_limit_is_413_not_400(client: Client, settings: Any) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 50
    settings.SYNTHORG_CONFIG_OVERRIDES = {"webhooks": {"max_payload_bytes": 100}}
    make_github()
    body = github_body(filler="x" * 200)
    assert post(client, "gh", "auto", body, github_headers(body)).status_code == 413
    small = github_body(filler="y" * 30)  # over Django's 50, under our 100: accepted
    assert post(client, "gh", "auto", small, github_headers(small)).status_code == 202


class EndlessStream(io.RawIOBase):
    """A chunked body that never ends; counts what the receiver read."""

    def __init__(self) -> None:
        self.read_bytes = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        size = 65536 if size is None or size < 0 else size
        self.read_bytes += size
        return b"x" * size


def test_body_without_length_stops_reading_past_the_limit(settings: Any) -> None:
    settings.SYNTHORG_CONFIG_OVERRIDES = {"webhooks": {"max_payload_bytes": 1000}}
    from django.test import RequestFactory

    from webhooks.views import webhook_receive

    stream = EndlessStream()
    request = RequestFactory().generic("POST", "/api/v1/webhooks/gh/auto", data=b"",
                                       content_type="application/json")
    request.META.pop("CONTENT_LENGTH", None)
    request.META["wsgi.input"] = stream
    request.META["wsgi.input_terminated"] = True
    response = webhook_receive(request, connection_name="gh", event_type="auto")
    assert response.status_code == 413
    assert 1000 < stream.read_bytes <= 1001


def test_per_connection_rate_limit_is_429_with_retry_after(client: Client, settings: Any) -> None:
    settings.SYNTHORG_CONFIG_OVERRIDES = {"webhooks": {"rate_limit_rpm": 2}}
    make_github()
    statuses = []
    for index in range(3):
        body = github_body(index)
        statuses.append(post(client, "gh", "auto", body, github_headers(body)))
    assert [r.status_code for r in statuses] == [202, 202, 429]
    assert int(statuses[2]["Retry-After"]) >= 1
    assert Delivery.objects.count() == 2


def test_duplicate_is_recognised_before_the_rate_limit(client: Client, settings: Any) -> None:
    settings.SYNTHORG_CONFIG_OVERRIDES = {"webhooks": {"rate_limit_rpm": 1}}
    make_github()
    body = github_body()
    assert post(client, "gh", "auto", body, github_headers(body)).status_code == 202
    assert post(client, "gh", "auto", body, github_headers(body)).status_code == 200


def test_flood_guard_per_source_address_is_429_before_anything_else(settings: Any) -> None:
    settings.SYNTHORG_CONFIG_OVERRIDES = {"webhooks": {"flood_rpm_per_ip": 2}}
    flooder = Client(REMOTE_ADDR="198.51.100.9")
    other = Client(REMOTE_ADDR="198.51.100.10")
    codes = [post(flooder, "nobody", "auto", b"{}", {}).status_code for _ in range(3)]
    assert codes == [401, 401, 429]
    assert post(other, "nobody", "auto", b"{}", {}).status_code == 401
    assert RejectionCount.objects.get(reason="flood").count == 1


def test_generic_hmac_uses_the_connections_own_header_and_encoding(client: Client) -> None:
    make_generic(signature_header="X-Sig", signature_prefix="sha256=", signature_encoding="base64",
                 timestamp_header="X-Ts", event_header="X-Event")
    body = b'{"type": "order.paid"}'
    options = {"header": "X-Sig", "prefix": "sha256=", "encoding": "base64", "timestamp_header": "X-Ts",
               "event_header": "X-Event"}
    headers = {**sign_generic_hmac(b"generic-secret-0123456789", body, options, timestamp=int(time.time())),
               "X-Event": "order.paid"}
    response = post(client, "gen", "auto", body, headers)
    assert response.status_code == 202
    assert Delivery.objects.get().event_type == "order.paid"
    wrong = sign_generic_hmac(b"generic-secret-0123456789", body, {**options, "encoding": "hex"},
                              timestamp=int(time.time()))
    assert post(client, "gen", "auto", body + b" ", wrong).status_code == 401


def test_standard_webhooks_retry_of_one_message_is_a_duplicate(client: Client) -> None:
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    make_generic("std", signature_scheme="standard_webhooks", signing_secret=secret)
    body = b'{"type": "invoice.created", "data": {}}'
    now = int(time.time())
    first = post(client, "std", "auto", body, sign_standard_webhooks(secret, body, message_id="msg_1", timestamp=now))
    retry = post(client, "std", "auto", body,
                 sign_standard_webhooks(secret, body, message_id="msg_1", timestamp=now + 5))
    other = post(client, "std", "auto", body,
                 sign_standard_webhooks(secret, body, message_id="msg_2", timestamp=now + 5))
    assert [first.status_code, retry.status_code, other.status_code] == [202, 200, 202]
    assert Delivery.objects.filter(event_type="invoice.created").count() == 2


def test_verification_off_is_ignored_outside_development_mode(client: Client, settings: Any) -> None:
    settings.SYNTHORG_CONFIG_OVERRIDES = {"webhooks": {"verify_signatures": False}}
    settings.SYNTHORG_DEV = False
    make_github()
    assert post(client, "gh", "auto", b"{}", {}).status_code == 401


def test_verification_off_in_development_marks_deliveries_unverified(client: Client, settings: Any) -> None:
    settings.SYNTHORG_CONFIG_OVERRIDES = {"webhooks": {"verify_signatures": False}}
    settings.SYNTHORG_DEV = True
    make_github()
    response = post(client, "gh", "auto", b'{"a": 1}', {})
    assert response.status_code == 202
    delivery = Delivery.objects.get()
    assert delivery.outcome == Delivery.Outcome.ACCEPTED_UNVERIFIED and delivery.matched_secret == "none"


def test_verification_off_outside_development_fails_the_system_check(settings: Any) -> None:
    from webhooks.checks import verify_signatures_check

    settings.SYNTHORG_CONFIG_OVERRIDES = {"webhooks": {"verify_signatures": False}}
    settings.SYNTHORG_DEV = False
    assert [e.id for e in verify_signatures_check()] == ["webhooks.E001"]
    settings.SYNTHORG_DEV = True
    assert verify_signatures_check() == []


def test_receiver_needs_no_csrf_token_or_session() -> None:
    make_github()
    client = Client(enforce_csrf_checks=True, REMOTE_ADDR="203.0.113.8")
    body = github_body()
    assert post(client, "gh", "auto", body, github_headers(body)).status_code == 202


def test_get_on_the_receiver_is_405(client: Client) -> None:
    make_github()
    assert client.get("/api/v1/webhooks/gh/push").status_code == 405


def test_github_secret_constant_is_githubs_documented_example() -> None:
    # GitHub's docs: secret "It's a Secret to Everybody", payload "Hello, World!".
    from webhooks.verifiers.github import github_signature

    expected = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    assert github_signature(GITHUB_SECRET.encode(), b"Hello, World!") == expected
