"""One module per sink kind: what connection type it needs, its settings, how it sends.

A sender raises `synthorg.egress.TransientError` (retry later, ``retry_after`` honoured) or
`PermanentError` (give up); anything it returns means the sink accepted the message.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from notifications.sinks import email, slack, slack_webhook, webhook


@dataclass(frozen=True)
class SinkKind:
    name: str
    connection_type: str | None  # None: no connection (the Slack incoming-webhook URL is the sink's secret)
    validate: Callable[[Mapping[str, Any], Mapping[str, str]], dict[str, list[str]]]
    send: Callable[..., int | None]
    # Secret fields the sink keeps itself (encrypted); generated ones are shown once at creation.
    secret_fields: tuple[str, ...] = ()
    generated_secret: Callable[[], dict[str, str]] | None = None


KINDS: dict[str, SinkKind] = {k.name: k for k in (
    SinkKind("email", "smtp", email.validate, email.send),
    SinkKind("slack", "slack", slack.validate, slack.send),
    SinkKind("slack_webhook", None, slack_webhook.validate, slack_webhook.send, secret_fields=("webhook_url",)),
    SinkKind("webhook", "generic_http", webhook.validate, webhook.send, secret_fields=("signing_secret",),
             generated_secret=webhook.generate_secret),
)}
