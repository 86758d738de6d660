"""Issue 13, part 1: any signed, well-formed delivery is stored, whatever its strings hold.

Observed before: a signed GitHub body holding "x\\u0000y", a signed Slack form holding %00 and
a body with a lone surrogate escape ("\\ud800") answered 500 and were never stored
(PostgreSQL's jsonb refuses them); the PostgreSQL log kept a payload fragment.
"""
from __future__ import annotations

import json
import logging
from typing import Any
from unittest import mock
from urllib.parse import urlencode

import psycopg
import pytest
from django.test import Client

from tests.webhooks.receiving import github_headers, make_github, make_slack, post, slack_headers
from webhooks import receiver, services
from webhooks.models import Delivery, WorkflowRun
from webhooks.payloads import MAX_NESTING, payload_parse

pytestmark = pytest.mark.django_db

MARKER = "PAYLOADFRAGMENT"


def deliver(body: bytes, *, event: str = "push", client: Client | None = None) -> Any:
    return post(client or Client(), "gh", "auto", body, github_headers(body, event=event))


def test_signed_json_with_nul_is_accepted_and_stored_with_the_raw_body() -> None:
    make_github()
    body = b'{"text": "x\\u0000y", "ok": "plain"}'
    response = deliver(body)
    assert response.status_code == 202, response.content
    delivery = Delivery.objects.get(pk=response.json()["delivery_id"])
    assert bytes(delivery.body) == body  # the bytes as received
    assert delivery.payload == {"text": "x\\u0000y", "ok": "plain"}  # the six characters \u0000
    assert delivery.payload_escaped is True
    assert services.delivery_payload_as_sent(delivery) == {"text": "x\x00y", "ok": "plain"}


def test_signed_json_with_a_lone_surrogate_is_accepted_and_stored() -> None:
    make_github()
    body = b'{"text": "a\\ud800b", "pair": "\\ud83d\\ude00", "k\\udfff": 1}'
    response = deliver(body)
    assert response.status_code == 202, response.content
    delivery = Delivery.objects.get(pk=response.json()["delivery_id"])
    # A valid pair is one character (stored as is); a lone surrogate is written as its escape.
    assert delivery.payload == {"text": "a\\ud800b", "pair": "\U0001f600", "k\\udfff": 1}
    assert services.delivery_payload_as_sent(delivery) == json.loads(body)


def test_signed_slack_form_with_nul_is_accepted_and_stored() -> None:
    make_slack()
    body = urlencode({"command": "/deploy", "text": "go\x00now", "user_id": "U1"}).encode()
    assert b"%00" in body
    response = post(Client(), "sl", "auto", body, slack_headers(body), content_type="application/x-www-form-urlencoded")
    assert response.status_code == 202, response.content
    delivery = Delivery.objects.get(pk=response.json()["delivery_id"])
    assert delivery.event_type == "slash_command"
    assert delivery.payload["text"] == "go\\u0000now" and delivery.payload_escaped
    assert bytes(delivery.body) == body


def test_nul_in_a_field_that_names_the_event_is_stored_escaped() -> None:
    make_slack()
    body = json.dumps({"type": "odd\x00type", "event_id": "Ev\x001"}).encode()
    response = post(Client(), "sl", "auto", body, slack_headers(body))
    assert response.status_code == 202, response.content
    delivery = Delivery.objects.get(pk=response.json()["delivery_id"])
    assert delivery.event_type == "odd\\u0000type" and delivery.provider_delivery_id == "Ev\\u00001"


def test_a_number_beyond_a_double_is_kept_as_its_literal_text() -> None:
    make_github()
    response = deliver(b'{"big": 1e400, "small": -1E+999, "fine": 1.5}')
    assert response.status_code == 202, response.content
    delivery = Delivery.objects.get(pk=response.json()["delivery_id"])
    assert delivery.payload == {"big": "1e400", "small": "-1E+999", "fine": 1.5}
    assert delivery.payload_escaped is True


def test_an_integer_of_thousands_of_digits_is_kept_as_its_literal_text() -> None:
    make_github()
    digits = "9" * 5_000
    response = deliver(('{"big": ' + digits + ', "n": 7}').encode())
    assert response.status_code == 202, response.content
    delivery = Delivery.objects.get(pk=response.json()["delivery_id"])
    assert delivery.payload == {"big": digits, "n": 7} and delivery.payload_escaped is True


def test_plain_payload_is_stored_unchanged_and_not_flagged() -> None:
    make_github()
    body = json.dumps({"text": "caf\u00e9 \\u0000 is six characters here", "n": [1, {"a": None}]}).encode()
    response = deliver(body)
    delivery = Delivery.objects.get(pk=response.json()["delivery_id"])
    assert delivery.payload == json.loads(body) and delivery.payload_escaped is False


@pytest.mark.parametrize("depth", [MAX_NESTING + 1, 1_000, 100_000])
def test_nesting_past_the_limit_is_a_400_not_a_500(depth: int) -> None:
    make_github()
    body = b'{"a": ' + b"[" * depth + b"]" * depth + b"}"
    response = deliver(body)
    assert response.status_code == 400 and response.json()["code"] == "malformed_body"
    assert not Delivery.objects.exists()


def test_nesting_at_the_limit_is_stored() -> None:
    make_github()
    depth = MAX_NESTING - 1  # plus the outer object
    body = b'{"a": ' + b"[" * depth + b'"\\u0000"' + b"]" * depth + b"}"
    response = deliver(body)
    assert response.status_code == 202, response.content


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    parsed = payload_parse(json.dumps({"s": "[" * 5_000 + "\\\"{" * 100}).encode(), "application/json")
    assert parsed is not None and parsed.value["s"].startswith("[[[")


# --- trigger conditions and workflow runs see the values the sender meant -------------------


def test_trigger_conditions_compare_the_values_as_sent(django_capture_on_commit_callbacks: Any) -> None:
    make_github()
    # "x?y" matches x, NUL, y (what the sender meant), not the eight stored characters.
    services.trigger_rule_create(data={"name": "glob", "event_type": "push", "workflow": "log_event",
                                       "conditions": [{"path": "text", "op": "glob", "value": "x?y"}]})
    # The literal backslash text is not what was sent: this rule must not fire.
    services.trigger_rule_create(data={"name": "escape-text", "event_type": "push", "workflow": "log_event",
                                       "conditions": [{"path": "text", "op": "eq", "value": "x\\u0000y"}]})
    with django_capture_on_commit_callbacks(execute=True):
        response = deliver(b'{"text": "x\\u0000y"}')
    assert response.status_code == 202
    assert list(WorkflowRun.objects.values_list("rule_name", flat=True)) == ["glob"]


def test_workflow_runs_get_the_payload_as_sent() -> None:
    make_github()
    response = deliver(b'{"text": "x\\u0000y", "s": "\\ud800"}')
    delivery = Delivery.objects.get(pk=response.json()["delivery_id"])
    published = services.delivery_event(delivery)
    assert published["payload"] == {"text": "x\\u0000y", "s": "\\ud800"} and published["payload_escaped"] is True
    as_sent = services.delivery_event(delivery, as_sent=True)
    assert as_sent["payload"] == {"text": "x\x00y", "s": "\ud800"} and as_sent["payload_escaped"] is False
    # http_forward sends it as JSON: the escapes come back, the sender's JSON exactly.
    assert json.dumps(as_sent["payload"]) == '{"text": "x\\u0000y", "s": "\\ud800"}'


# --- no payload fragment in any log -------------------------------------------------------


def test_accepting_an_escaped_payload_logs_no_fragment(caplog: pytest.LogCaptureFixture) -> None:
    make_github()
    with caplog.at_level(logging.DEBUG):
        response = deliver(json.dumps({"t": MARKER + "\x00" + MARKER}).encode())
    assert response.status_code == 202
    assert MARKER not in caplog.text


def test_a_refused_insert_logs_neither_the_database_message_nor_the_payload(caplog: pytest.LogCaptureFixture) -> None:
    make_github()
    refusal = psycopg.errors.UntranslatableCharacter(f'CONTEXT: JSON data, line 1: {{"t": "{MARKER}...')
    with mock.patch.object(receiver._delivery_insert, "run", side_effect=refusal), \
            caplog.at_level(logging.DEBUG):
        response = deliver(json.dumps({"t": MARKER}).encode(), client=Client(raise_request_exception=False))
    assert response.status_code == 500
    assert MARKER not in caplog.text
    assert "could not be stored: UntranslatableCharacter" in caplog.text


def test_http_forward_posts_the_payload_as_sent() -> None:
    from integrations import services as connection_services
    from tests.peers.http_peer import HttpPeer, Reply

    with HttpPeer() as peer:
        peer.script("/hook", Reply(200, b"{}"))
        connection_services.connection_create(name="sink", connection_type="generic_http",
                                              credentials={"base_url": peer.url("/"), "token": "sink-token"})
        make_github()
        services.trigger_rule_create(data={"name": "fwd", "event_type": "*", "workflow": "http_forward",
                                           "parameters": {"connection": "sink", "path": "/hook"}})
        response = deliver(b'{"text": "x\\u0000y", "s": "\\ud800"}')
        services.delivery_publish(delivery_id=response.json()["delivery_id"])
        run = WorkflowRun.objects.get()
        services.workflow_run_execute(run_id=run.pk)
        forwarded = peer.received[0]
    run.refresh_from_db()
    assert run.status == WorkflowRun.Status.SUCCEEDED, run.error
    assert json.loads(forwarded.body)["payload"] == {"text": "x\x00y", "s": "\ud800"}
    assert b'"x\\u0000y"' in forwarded.body


def test_an_error_report_shows_no_payload_fragment() -> None:
    import sys

    from django.views.debug import ExceptionReporter

    make_github()
    body = json.dumps({"t": MARKER}).encode()
    refusal = psycopg.errors.UntranslatableCharacter("refused")
    with mock.patch.object(receiver._delivery_insert, "run", side_effect=refusal):
        try:
            receiver.delivery_receive(connection_name="gh", path_event_type="push", body=body,
                                      headers=github_headers(body), content_type="application/json",
                                      remote_ip="127.0.0.1")
        except receiver.DeliveryNotStored:
            frames = ExceptionReporter(None, *sys.exc_info()).get_traceback_frames()
        else:
            pytest.fail("the refused insert was not reported")
    # The receiver's frame (DEBUG's 500 page, a mailed report) shows no part of the body.
    [receive] = [frame for frame in frames if frame["function"] == "delivery_receive"]
    assert MARKER not in repr(receive["vars"])
