from __future__ import annotations

from integrations.types.base import ConnectionType, FieldSpec

CONNECTION_TYPE = ConnectionType(
    name="slack",
    label="Slack",
    description="A Slack app: a bot token for the Web API, a signing secret for events and commands.",
    webhook_scheme="slack",
    fields=(
        FieldSpec("token", required=True, secret=True, help="bot token (xoxb-...)"),
        FieldSpec("signing_secret", secret=True, help="signing secret (X-Slack-Signature)"),
    ),
)
