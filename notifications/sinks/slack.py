"""Slack through a ``slack`` connection: ``chat.postMessage`` with Block Kit and the alert id in metadata."""
from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from synthorg.egress import PermanentError, TransientError
from synthorg.http import http_request

POST_MESSAGE_URL = "https://slack.com/api/chat.postMessage"
SLACK_HOSTS = ("slack.com",)
METADATA_EVENT_TYPE = "synthorg_alert"
_CHANNEL = re.compile(r"^[#@]?[A-Za-z0-9._-]{1,80}$")
# Slack's ok=false errors worth retrying (https://api.slack.com/methods/chat.postMessage#errors).
TRANSIENT_ERRORS = frozenset({"internal_error", "fatal_error", "service_unavailable", "request_timeout",
                              "ratelimited"})
_ERROR_CODE = re.compile(r"^[a-z0-9_]{1,64}$")


def validate(settings: Mapping[str, Any], secrets: Mapping[str, str]) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    channel = settings.get("channel")
    if not isinstance(channel, str) or not _CHANNEL.match(channel):
        errors["channel"] = ["a channel id or name such as C0123456789 or #alerts"]
    unknown = set(settings) - {"channel"}
    if unknown:
        errors["settings"] = [f"unknown settings: {', '.join(sorted(unknown))}"]
    return errors


def blocks(message: Any) -> list[dict[str, Any]]:
    """Block Kit: a header, the problems, and a button to the console page."""
    data = message.payload["data"]
    problems = data.get("problems") or ([data["problem"]] if data.get("problem") else [])
    lines = [f"*{p['title']}* ({p['state']})" for p in problems[:20]]
    if len(problems) > 20:
        lines.append(f"... and {len(problems) - 20} more")
    body = "\n".join(lines)
    return [
        {"type": "header", "text": {"type": "plain_text", "text": message.subject[:150]}},
        {"type": "section", "text": {"type": "mrkdwn", "text": (body or message.subject)[:2900]}},
        {"type": "actions", "elements": [{"type": "button", "action_id": "open_console",
                                          "text": {"type": "plain_text", "text": "Open in the console"},
                                          "url": message.url}]},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": f"alert {message.alert_id}"}]},
    ]


def post_message_body(*, channel: str, message: Any) -> dict[str, Any]:
    return {"channel": channel, "text": message.subject, "blocks": blocks(message),
            "metadata": {"event_type": METADATA_EVENT_TYPE,
                         "event_payload": {"alert_id": message.alert_id, "type": message.event_type}}}


def send(*, sink: Any, message: Any, values: Mapping[str, Any], thread_root: str | None,
         timeout: float) -> int | None:
    response = http_request("POST", POST_MESSAGE_URL, timeout=(min(5.0, timeout), timeout),
                            headers={"Authorization": f"Bearer {values.get('token', '')}",
                                     "Content-Type": "application/json; charset=utf-8"},
                            json=post_message_body(channel=sink.settings["channel"], message=message),
                            allowed_hosts=SLACK_HOSTS, connection_id=sink.connection_id)
    try:
        answer = response.json()
    except ValueError:
        raise TransientError("Slack chat.postMessage: the answer is not JSON", response.status_code) from None
    if isinstance(answer, dict) and answer.get("ok") is True:
        return response.status_code
    error = answer.get("error") if isinstance(answer, dict) else None
    code = error if isinstance(error, str) and _ERROR_CODE.match(error) else "unknown_error"
    raise (TransientError if code in TRANSIENT_ERRORS else PermanentError)(
        f"Slack chat.postMessage answered ok=false: {code}", response.status_code)
