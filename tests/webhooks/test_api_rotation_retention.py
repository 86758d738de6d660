"""Signing-secret rotation, activity, rules and runs APIs, retention."""
from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.utils import timezone
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from integrations import generation
from synthorg.models import AuditEvent
from tests.webhooks.receiving import GITHUB_SECRET, github_body, github_headers, make_github, post
from webhooks import services
from webhooks.models import BusMessage, Delivery, ReceiptSample, WorkflowRun

pytestmark = pytest.mark.django_db
ROTATE = "/api/v1/connections/gh/signing-secret/rotate"


@pytest.fixture
def rotator(perm_client: Any) -> APIClient:
    # The answer carries the new secret: rotating needs change_connection and reveal_secret.
    return perm_client("integrations.change_connection", "integrations.reveal_secret")


def send(body: bytes, secret: str = GITHUB_SECRET) -> Any:
    return post(Client(REMOTE_ADDR="203.0.113.30"), "gh", "auto", body, github_headers(body, secret=secret))


def test_rotation_keeps_the_previous_secret_valid_and_says_which_matched(rotator: APIClient) -> None:
    make_github()
    response = rotator.post(ROTATE, {"secret": "the-new-secret-0123456789"}, format="json")
    assert response.status_code == 200
    assert response.json()["secret"] is None
    old = send(github_body(1))
    new = send(github_body(2), secret="the-new-secret-0123456789")
    assert old.status_code == new.status_code == 202
    assert Delivery.objects.get(pk=old.json()["delivery_id"]).matched_secret == "previous"
    assert Delivery.objects.get(pk=new.json()["delivery_id"]).matched_secret == "current"
    event = AuditEvent.objects.get(action="connection.signing_secret.rotate")
    assert event.target == "gh" and "the-new-secret" not in str(event.details)


def test_previous_secret_stops_at_its_valid_until(rotator: APIClient) -> None:
    make_github()
    until = timezone.now() + timedelta(minutes=5)
    rotator.post(ROTATE, {"secret": "the-new-secret-0123456789", "previous_valid_until": until.isoformat()},
                      format="json")
    from webhooks.models import WebhookEndpoint

    WebhookEndpoint.objects.update(previous_valid_until=timezone.now() - timedelta(seconds=1))
    generation.connections_changed()  # a bulk update sends no signal: it announces itself
    assert send(github_body(3)).status_code == 401


def test_rotation_without_a_secret_generates_one_shown_once(rotator: APIClient) -> None:
    make_github()
    generated = rotator.post(ROTATE, {}, format="json").json()["secret"]
    assert len(generated) == 64
    assert send(github_body(4), secret=generated).status_code == 202


@pytest.mark.parametrize(("payload", "status"), [
    ({"previous_valid_until": "2000-01-01T00:00:00Z"}, 422), ({"secret": "short"}, 422)])
def test_rotation_refuses_bad_input(rotator: APIClient, payload: dict[str, Any], status: int) -> None:
    make_github()
    assert rotator.post(ROTATE, payload, format="json").status_code == status


def test_rotation_needs_staff(user_client: APIClient, api_client: APIClient) -> None:
    make_github()
    assert user_client.post(ROTATE, {}, format="json").status_code == 403
    assert api_client.post(ROTATE, {}, format="json").status_code == 401


def test_activity_lists_deliveries_and_rejections_newest_first(user_client: APIClient) -> None:
    make_github()
    accepted = send(github_body(1)).json()["delivery_id"]
    send(github_body(2), secret="wrong")
    response = user_client.get("/api/v1/webhooks/gh/activity?limit=10")
    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["outcome"] for r in results] == ["rejected", "accepted"]
    assert results[0]["reason"] == "bad_signature" and results[1]["delivery_id"] == accepted
    assert "payload" not in results[1]
    assert len(user_client.get("/api/v1/webhooks/gh/activity?limit=1").json()["results"]) == 1


def test_activity_payload_needs_the_permission(user: Any, user_client: APIClient) -> None:
    make_github()
    send(github_body(9))
    url = "/api/v1/webhooks/gh/activity?include_payload=true"
    assert user_client.get(url).status_code == 403
    user.user_permissions.add(Permission.objects.get(codename="view_delivery_payload"))
    assert user_client.get(url).json()["results"][0]["payload"]["n"] == 9


@pytest.mark.parametrize("query", ["limit=0", "limit=501", "limit=x"])
def test_activity_limit_bounds(user_client: APIClient, query: str) -> None:
    make_github()
    assert user_client.get(f"/api/v1/webhooks/gh/activity?{query}").status_code == 400


def test_activity_of_unknown_connection_is_404(user_client: APIClient) -> None:
    assert user_client.get("/api/v1/webhooks/nobody/activity").status_code == 404


def test_rules_crud_and_runs_listing(operator_client: APIClient, user_client: APIClient) -> None:
    make_github()
    created = operator_client.post("/api/v1/webhooks/triggers", {
        "name": "prs", "event_type": "pull_request.*", "connection": "gh",
        "conditions": [{"path": "action", "op": "in", "value": ["opened"]}], "workflow": "log_event"}, format="json")
    assert created.status_code == 201, created.json()
    rule_id = created.json()["id"]
    assert user_client.post("/api/v1/webhooks/triggers", {"name": "x", "event_type": "*", "workflow": "log_event"},
                            format="json").status_code == 403
    bad = operator_client.patch(f"/api/v1/webhooks/triggers/{rule_id}",
                             {"conditions": [{"path": "a", "op": "exec", "value": 1}]}, format="json")
    assert bad.status_code == 422 and "conditions" in bad.json()["errors"]
    patched = operator_client.patch(f"/api/v1/webhooks/triggers/{rule_id}", {"enabled": False}, format="json")
    assert patched.json()["enabled"] is False and patched.json()["connection"] == "gh"
    assert user_client.get("/api/v1/webhooks/triggers").json()["count"] == 1
    operator_client.patch(f"/api/v1/webhooks/triggers/{rule_id}", {"enabled": True}, format="json")
    body = github_body(action="opened")
    delivery_id = post(Client(REMOTE_ADDR="203.0.113.30"), "gh", "auto", body,
                       github_headers(body, event="pull_request")).json()["delivery_id"]
    services.delivery_publish(delivery_id=delivery_id)
    runs = user_client.get("/api/v1/webhooks/runs?rule=prs").json()
    assert runs["count"] == 1 and runs["results"][0]["delivery"] == delivery_id
    run_id = runs["results"][0]["id"]
    assert user_client.get(f"/api/v1/webhooks/runs/{run_id}").json()["rule_name"] == "prs"
    assert user_client.get("/api/v1/webhooks/runs/999999").status_code == 404
    assert operator_client.delete(f"/api/v1/webhooks/triggers/{rule_id}").status_code == 204
    assert WorkflowRun.objects.get().rule is None  # runs outlive their rule


def test_runs_list_query_count_is_constant(user_client: APIClient, django_assert_max_num_queries: Any) -> None:
    for index in range(20):
        WorkflowRun.objects.create(rule_name=f"r{index}", workflow="log_event", event_id=f"{index:032x}")
    # + the user's and their groups' permissions (2), whatever the number of runs
    with django_assert_max_num_queries(6):
        assert user_client.get("/api/v1/webhooks/runs").json()["count"] == 20


def _age(delivery_id: int, days: float, **fields: Any) -> None:
    Delivery.objects.filter(pk=delivery_id).update(received_at=timezone.now() - timedelta(days=days), **fields)


def test_retention_deletes_old_published_deliveries_only(settings: Any) -> None:
    settings.SYNTHORG_CONFIG_OVERRIDES = {"webhooks": {"receipt_retention_days": 1}}
    make_github()
    old, fresh, unpublished, inside_horizon = (send(github_body(i)).json()["delivery_id"] for i in range(4))
    for pk in (old, fresh, unpublished, inside_horizon):
        services.delivery_publish(delivery_id=pk)
    _age(old, 4)
    _age(fresh, 0.5)
    _age(unpublished, 4, publish_state=Delivery.PublishState.PENDING)
    _age(inside_horizon, 2)  # past retention (1 day) but inside GitHub's 3-day replay horizon
    assert services.deliveries_prune()["deliveries"] == 1
    assert set(Delivery.objects.values_list("pk", flat=True)) == {fresh, unpublished, inside_horizon}
    # The kept key still makes a replay a duplicate.
    assert send(github_body(3)).status_code == 200


def test_retention_zero_keeps_everything_and_override_applies(settings: Any) -> None:
    settings.SYNTHORG_CONFIG_OVERRIDES = {"webhooks": {"receipt_retention_days": 0}}
    connection = make_github()
    pk = send(github_body(1)).json()["delivery_id"]
    services.delivery_publish(delivery_id=pk)
    _age(pk, 400)
    assert services.deliveries_prune()["deliveries"] == 0
    from webhooks.models import WebhookEndpoint

    WebhookEndpoint.objects.create(connection=connection, retention_days=5)
    assert services.deliveries_prune()["deliveries"] == 1


def test_retention_prunes_old_samples_and_bus_messages(settings: Any) -> None:
    settings.SYNTHORG_CONFIG_OVERRIDES = {"webhooks": {"receipt_retention_days": 1}}
    make_github()
    send(github_body(), secret="wrong")
    ReceiptSample.objects.update(received_at=timezone.now() - timedelta(days=2))
    BusMessage.objects.create(channel="webhooks", event_id="old", published_at=timezone.now() - timedelta(days=5))
    result = services.deliveries_prune()
    assert result["samples"] == 1 and result["bus_messages"] == 1


def test_connection_deletion_cascades_to_deliveries() -> None:
    from integrations import services as connection_services

    make_github()
    send(github_body())
    connection_services.connection_delete(name="gh")
    assert not Delivery.objects.exists()


@hsettings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
# Secrets hold no NUL (refused as a field rule: no header or URL could carry one).
@given(body=st.binary(min_size=1, max_size=300),
       secret=st.text(min_size=1, max_size=40).filter(lambda s: bool(s.strip()) and "\x00" not in s),
       which=st.sampled_from(["body", "signature"]), bit=st.integers(min_value=0, max_value=10_000))
def test_any_single_bit_change_is_401_through_the_receiver(body: bytes, secret: str, which: str, bit: int) -> None:
    from integrations.models import Connection

    Connection.objects.filter(name="hyp").delete()
    from tests.webhooks.receiving import make_github as make

    make("hyp", secret=secret)
    headers = github_headers(body, secret=secret)
    if which == "body":
        index = bit % (len(body) * 8)
        mutated = bytearray(body)
        mutated[index // 8] ^= 1 << (index % 8)
        body = bytes(mutated)
    else:
        raw = bytearray(headers["X-Hub-Signature-256"].encode())
        index = bit % (len(raw) * 8)
        raw[index // 8] ^= 1 << (index % 8)
        try:
            headers["X-Hub-Signature-256"] = raw.decode("ascii")
        except UnicodeDecodeError:
            return  # not a header value an HTTP client can send
        if not headers["X-Hub-Signature-256"].isprintable():
            return
    response = post(Client(REMOTE_ADDR="203.0.113.31"), "hyp", "auto", body, headers)
    assert response.status_code == 401
