from __future__ import annotations

from urllib.parse import urlsplit

from integrations.types.base import ConnectionType, FieldSpec, https_url_unless_loopback
from integrations.types.http_probe import http_probe_call
from integrations.types.probing import HealthResult, ProbeContext, healthy, unhealthy
from synthorg.config import get_config
from synthorg.egress import normalize_host

DEFAULT_API_URL = "https://api.github.com"
# GitHub.com and GitHub Enterprise Cloud with data residency; a GitHub Enterprise Server
# host must be named in integrations.health.github_allowed_hosts.
GITHUB_DOMAINS = ("github.com", "ghe.com")


def token_host_allowed(host: str) -> bool:
    """May the token be sent to ``host``? api.github.com, *.github.com, *.ghe.com, or an operator's host."""
    host = normalize_host(host)
    if host == "api.github.com" or any(host.endswith("." + domain) for domain in GITHUB_DOMAINS):
        return True
    allowed = {normalize_host(h) for h in get_config().integrations.health.github_allowed_hosts}
    return host in allowed


def probe(context: ProbeContext) -> HealthResult:
    api_url = str(context.values.get("api_url") or DEFAULT_API_URL).rstrip("/")
    host = urlsplit(api_url).hostname or ""
    if not token_host_allowed(host):
        # Checked before any request: a mistyped or hostile api_url must not receive the token.
        return unhealthy(f"token not sent: {normalize_host(host)} is not a GitHub host; add it to "
                         "integrations.health.github_allowed_hosts if it is your GitHub Enterprise Server")
    response = http_probe_call(context, "GET", f"{api_url}/user", headers={
        "Authorization": f"Bearer {context.values.get('token', '')}",
        "Accept": "application/vnd.github+json",
        "X-GitHub-Api-Version": "2022-11-28",
    })
    if isinstance(response, HealthResult):
        return response
    if response.status_code != 200:
        return unhealthy(f"GET {api_url}/user: HTTP {response.status_code} (expected 200)")
    try:
        login = response.json().get("login")
    except (ValueError, AttributeError):
        login = None
    return healthy(f"authenticated as {login}" if isinstance(login, str) else "authenticated")


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
    probe=probe,
    destination_fields=("api_url",),
)
