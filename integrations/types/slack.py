from __future__ import annotations

import re

from integrations.types.base import ConnectionType, FieldSpec
from integrations.types.http_probe import http_probe_call
from integrations.types.probing import HealthResult, ProbeContext, healthy, unhealthy

AUTH_TEST_URL = "https://slack.com/api/auth.test"
# Slack's error codes are snake_case words; anything else is not echoed into `detail`.
_ERROR_CODE = re.compile(r"^[a-z0-9_]{1,64}$")


def probe(context: ProbeContext) -> HealthResult:
    response = http_probe_call(context, "POST", AUTH_TEST_URL,
                               headers={"Authorization": f"Bearer {context.values.get('token', '')}"})
    if isinstance(response, HealthResult):
        return response
    if response.status_code != 200:
        return unhealthy(f"POST {AUTH_TEST_URL}: HTTP {response.status_code} (expected 200)")
    try:
        body = response.json()
    except ValueError:
        return unhealthy(f"POST {AUTH_TEST_URL}: the answer is not JSON")
    if not isinstance(body, dict):
        return unhealthy(f"POST {AUTH_TEST_URL}: unexpected answer")
    if body.get("ok") is True:
        team, user = body.get("team"), body.get("user")
        if isinstance(team, str) and isinstance(user, str):
            return healthy(f"authenticated as {user[:64]} in {team[:64]}")
        return healthy("authenticated")
    error = body.get("error")
    code = error if isinstance(error, str) and _ERROR_CODE.match(error) else "unknown_error"
    return unhealthy(f"Slack auth.test answered ok=false: {code}")


CONNECTION_TYPE = ConnectionType(
    name="slack",
    label="Slack",
    description="A Slack app: a bot token for the Web API, a signing secret for events and commands.",
    webhook_scheme="slack",
    fields=(
        FieldSpec("token", required=True, secret=True, help="bot token (xoxb-...)"),
        FieldSpec("signing_secret", secret=True, help="signing secret (X-Slack-Signature)"),
    ),
    probe=probe,
    # The token goes only to slack.com (a constant URL, no field decides it).
    destination_fields=(),
)
