"""Slack through an incoming-webhook URL, kept encrypted as the sink's secret (the URL is the credential)."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from notifications.sinks.slack import blocks
from synthorg import url_policy
from synthorg.http import http_request

WEBHOOK_HOSTS = ("hooks.slack.com",)


def validate(settings: Mapping[str, Any], secrets: Mapping[str, str]) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    url = secrets.get("webhook_url")
    if not url:
        errors["webhook_url"] = ["required: the incoming-webhook URL (https://hooks.slack.com/services/...)"]
    else:
        try:
            parsed = url_policy.check_https_url(str(url))
        except url_policy.UnsafeURL as exc:
            errors["webhook_url"] = [str(exc)]
        else:
            if parsed.host not in WEBHOOK_HOSTS:
                errors["webhook_url"] = ["an incoming-webhook URL is on hooks.slack.com"]
    if settings:
        errors["settings"] = ["this kind has no settings"]
    return errors


def send(*, sink: Any, message: Any, values: Mapping[str, Any], thread_root: str | None,
         timeout: float) -> int | None:
    # hide_path: the path is the credential; it never reaches a log or an error message.
    response = http_request("POST", str(values["webhook_url"]), timeout=(min(5.0, timeout), timeout),
                            json={"text": message.subject, "blocks": blocks(message)},
                            allowed_hosts=WEBHOOK_HOSTS, hide_path=True)
    return response.status_code
