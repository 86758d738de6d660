from __future__ import annotations

from integrations.types.base import ConnectionType, FieldSpec, https_url_unless_loopback

CONNECTION_TYPE = ConnectionType(
    name="github",
    label="GitHub",
    description="GitHub or GitHub Enterprise Server: a token for the REST API, a signing secret for webhooks.",
    webhook_scheme="github",
    fields=(
        FieldSpec("token", required=True, secret=True, help="personal access token or app token"),
        FieldSpec("api_url", kind="url", default="https://api.github.com",
                  validators=(https_url_unless_loopback,), help="REST API base URL"),
        FieldSpec("signing_secret", secret=True, help="webhook secret (X-Hub-Signature-256)"),
    ),
)
