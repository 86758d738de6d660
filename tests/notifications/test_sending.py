"""Sending through real peers: an aiosmtpd relay reads the email (parts, threading, link); a local
HTTP receiver checks the Standard Webhooks signature with the `standardwebhooks` library and answers
500, then 429 with Retry-After, then 200 (the retry schedule, driven by a controllable clock);
Slack's API through `responses`, asserting the exact chat.postMessage body."""
from __future__ import annotations

import json
from datetime import timedelta

import pytest
import responses
from standardwebhooks.webhooks import Webhook

from integrations import services as connections
from notifications import sending, services
from notifications.models import Alert, AlertAttempt, Problem
from tests.notifications.conftest import T0, healthy, http_connection, only_rule, smtp_connection, unhealthy
from tests.peers.http_peer import Reply

pytestmark = pytest.mark.django_db


@pytest.fixture
def watched():
    return connections.connection_create(name="watched", connection_type="generic_http",
                                         credentials={"base_url": "http://127.0.0.1:9/x"})


def send_all(now):  # the sweep's work, inline, with our clock
    return [sending.alert_send(alert_id=a, now=now) for a in sending.alerts_due(now=now)]


def test_email_threads_one_problem_and_links_to_the_console(mail_peer, watched, settings) -> None:
    settings.SYNTHORG_PUBLIC_URL = "https://integrations.example.com"
    relay = smtp_connection(mail_peer.port)
    services.sink_create(name="ops-mail", kind="email", connection=relay.name,
                         settings={"to": ["ops@example.com"], "from_address": "alerts@example.com"})
    unhealthy(watched)
    assert [o.result for o in send_all(T0 + timedelta(seconds=10))] == ["sent"]
    healthy(watched)
    assert [o.result for o in send_all(T0 + timedelta(seconds=20))] == ["sent"]

    opened, resolved = mail_peer.messages
    problem = Problem.objects.get()
    opened_alert = Alert.objects.get(kind="opened")
    assert opened["Message-ID"] == f"<{opened_alert.id}@alerts.synthorg>"
    assert opened["In-Reply-To"] is None
    assert resolved["In-Reply-To"] == opened["Message-ID"] and resolved["References"] == opened["Message-ID"]
    assert opened["To"] == "ops@example.com" and opened["From"] == "alerts@example.com"
    assert "Connection watched is unhealthy" in opened["Subject"]
    assert resolved["Subject"].startswith("[SynthOrg] Resolved:")
    text = opened.get_body(("plain",)).get_content()
    html = opened.get_body(("html",)).get_content()
    link = f"https://integrations.example.com/admin/notifications/problem/{problem.pk}/change/"
    assert link in text and f'href="{link}"' in html
    assert str(opened_alert.id) in text


@pytest.fixture
def limiter_clock(monkeypatch):
    """The connection's rate limiter on the test's clock: a 429's pause ends when our clock says so."""
    from integrations.ratelimit import decorator
    from integrations.ratelimit.limiter import RateLimiter
    from integrations.ratelimit.memory_store import MemoryStore

    clock = [T0.timestamp()]
    limiter = RateLimiter(MemoryStore(monotonic=lambda: clock[0]))
    monkeypatch.setattr(decorator, "get_rate_limiter", lambda: limiter)
    return clock


def test_webhook_is_signed_and_retried_on_500_and_429(http_peer, watched, limiter_clock) -> None:
    receiver = http_connection(http_peer.url("/hook"))
    created = services.sink_create(name="hook", kind="webhook", connection=receiver.name)
    secret = created.shown_once["signing_secret"]
    assert secret.startswith("whsec_")
    assert secret not in created.sink.secret_ciphertext  # stored encrypted
    http_peer.script("/hook", Reply(500, b"oops"), Reply(429, b"slow", {"Retry-After": "120"}), Reply(200, b"ok"))
    unhealthy(watched)
    alert = Alert.objects.get()

    first = sending.alert_send(alert_id=alert.pk, now=T0 + timedelta(seconds=10))
    assert first.result == "retry"
    step1 = (first.retry_at - (T0 + timedelta(seconds=10))).total_seconds()
    assert sending.BACKOFF_BASE_SECONDS / 2 <= step1 <= sending.BACKOFF_BASE_SECONDS  # exponential, jittered
    assert sending.alert_send(alert_id=alert.pk, now=T0 + timedelta(seconds=11)).result == "not_claimed"  # not due

    now = first.retry_at
    limiter_clock[0] = now.timestamp()
    second = sending.alert_send(alert_id=alert.pk, now=now)
    assert second.result == "retry"
    assert (second.retry_at - now).total_seconds() >= 120  # honours Retry-After
    limiter_clock[0] = second.retry_at.timestamp()  # the connection's pause (Retry-After) is over too
    third = sending.alert_send(alert_id=alert.pk, now=second.retry_at)
    assert third.result == "sent"

    attempts = list(AlertAttempt.objects.filter(alert=alert).values_list("number", "outcome", "status_code"))
    assert attempts == [(1, "transient", 500), (2, "transient", 429), (3, "sent", 200)]
    assert AlertAttempt.objects.get(number=2).retry_after == 120
    hooks = [r for r in http_peer.received if r.path == "/hook"]
    assert len(hooks) == 3
    verifier = Webhook(secret)
    for received in hooks:
        headers = {k.lower(): v for k, v in received.headers.items()}
        payload = verifier.verify(received.body, headers)  # raises on a bad signature
        assert headers["webhook-id"] == str(alert.pk)  # the same id each time: receivers deduplicate
        assert headers["authorization"] == "Bearer receiver-token-123"  # the connection's own auth
    assert payload["type"] == "problem.opened" and payload["id"] == str(alert.pk)
    assert payload["data"]["problem"]["connection"] == "watched"
    assert Alert.objects.get(pk=alert.pk).status == "sent"


def test_webhook_4xx_stops_at_once(http_peer, watched) -> None:
    receiver = http_connection(http_peer.url("/gone"))
    services.sink_create(name="hook", kind="webhook", connection=receiver.name)
    http_peer.script("/gone", Reply(410, b"gone"))
    unhealthy(watched)
    outcome = send_all(T0 + timedelta(seconds=10))[0]
    assert outcome.result == "failed"
    assert Alert.objects.get().status == "failed" and AlertAttempt.objects.count() == 1


def test_retries_give_up_after_24_hours(http_peer, watched) -> None:
    receiver = http_connection(http_peer.url("/down"))
    services.sink_create(name="hook", kind="webhook", connection=receiver.name)
    http_peer.script("/down", Reply(503, b"down"))
    unhealthy(watched)
    now, results = T0 + timedelta(seconds=10), []
    for _ in range(100):
        outcome = sending.alert_send(alert_id=Alert.objects.get().pk, now=now)
        results.append(outcome.result)
        if outcome.result != "retry":
            break
        now = outcome.retry_at
    assert results[-1] == "failed" and set(results[:-1]) == {"retry"}
    assert now - T0 <= timedelta(hours=24)
    assert len(results) < 60  # backoff grows to an hour: tens of tries in a day, not thousands


def test_webhook_timeout_is_retried(http_peer, watched, monkeypatch) -> None:
    monkeypatch.setattr(sending, "SEND_TIMEOUT_SECONDS", 0.5)
    receiver = http_connection(http_peer.url("/hang/3"))
    services.sink_create(name="hook", kind="webhook", connection=receiver.name)
    unhealthy(watched)
    assert send_all(T0 + timedelta(seconds=10))[0].result == "retry"
    assert AlertAttempt.objects.get().outcome == "transient"


@responses.activate
def test_slack_chat_post_message_body(watched, settings) -> None:
    settings.SYNTHORG_PUBLIC_URL = "https://integrations.example.com"
    slack = connections.connection_create(name="slack-app", connection_type="slack",
                                          credentials={"token": "xoxb-test-token"})
    services.sink_create(name="ops-slack", kind="slack", connection=slack.name, settings={"channel": "C0ALERTS"})
    responses.post("https://slack.com/api/chat.postMessage", json={"ok": True, "ts": "1.2"})
    unhealthy(watched)
    assert send_all(T0 + timedelta(seconds=10))[0].result == "sent"
    call = responses.calls[0]
    assert call.request.headers["Authorization"] == "Bearer xoxb-test-token"
    alert = Alert.objects.get()
    problem = Problem.objects.get()
    url = f"https://integrations.example.com/admin/notifications/problem/{problem.pk}/change/"
    assert json.loads(call.request.body) == {
        "channel": "C0ALERTS",
        "text": "[SynthOrg] Problem: Connection watched is unhealthy",
        "blocks": [
            {"type": "header", "text": {"type": "plain_text",
                                        "text": "[SynthOrg] Problem: Connection watched is unhealthy"}},
            {"type": "section", "text": {"type": "mrkdwn", "text": "*Connection watched is unhealthy* (open)"}},
            {"type": "actions", "elements": [{"type": "button", "action_id": "open_console",
                                              "text": {"type": "plain_text", "text": "Open in the console"},
                                              "url": url}]},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": f"alert {alert.pk}"}]},
        ],
        "metadata": {"event_type": "synthorg_alert",
                     "event_payload": {"alert_id": str(alert.pk), "type": "problem.opened"}},
    }


@responses.activate
def test_slack_ok_false_is_permanent_unless_transient(watched) -> None:
    slack = connections.connection_create(name="slack-app", connection_type="slack",
                                          credentials={"token": "xoxb-test-token"})
    services.sink_create(name="ops-slack", kind="slack", connection=slack.name, settings={"channel": "#alerts"})
    responses.post("https://slack.com/api/chat.postMessage", json={"ok": False, "error": "channel_not_found"})
    unhealthy(watched)
    assert send_all(T0 + timedelta(seconds=10))[0].result == "failed"
    assert "channel_not_found" in Alert.objects.get().last_error


@responses.activate
def test_slack_incoming_webhook_url_is_a_secret(watched, caplog) -> None:
    url = "https://hooks.slack.com/services/T000/B000/secretpart123"
    created = services.sink_create(name="ops-hook", kind="slack_webhook", secrets={"webhook_url": url})
    assert "secretpart123" not in created.sink.secret_ciphertext
    responses.post(url, body="ok")
    unhealthy(watched)
    assert send_all(T0 + timedelta(seconds=10))[0].result == "sent"
    assert json.loads(responses.calls[0].request.body)["text"].startswith("[SynthOrg] Problem:")
    assert "secretpart123" not in caplog.text


def test_sink_test_sends_now(http_peer) -> None:
    receiver = http_connection(http_peer.url("/hook"))
    created = services.sink_create(name="hook", kind="webhook", connection=receiver.name)
    http_peer.script("/hook", Reply(204))
    outcome = services.sink_test(sink_id=created.sink.pk)
    assert outcome.result == "sent"
    body = json.loads(http_peer.received[-1].body)
    assert body["type"] == "test" and body["id"] == outcome.alert_id


def test_sink_test_failure_is_answered_not_retried(http_peer) -> None:
    receiver = http_connection(http_peer.url("/status/503"))
    created = services.sink_create(name="hook", kind="webhook", connection=receiver.name)
    outcome = services.sink_test(sink_id=created.sink.pk)
    assert outcome.result == "failed" and "503" in outcome.error
    assert sending.alerts_due(now=T0 + timedelta(days=2)) == []


def test_a_sink_without_rules_of_its_own_gets_everything_a_rule_naming_sinks_only_those(http_peer, watched) -> None:
    receiver = http_connection(http_peer.url("/hook"))
    a = services.sink_create(name="a", kind="webhook", connection=receiver.name).sink
    services.sink_create(name="b", kind="webhook", connection=receiver.name)
    only_rule(["connection.unhealthy"], sinks=[a.pk])
    unhealthy(watched)
    assert list(Alert.objects.values_list("sink__name", flat=True)) == ["a"]
