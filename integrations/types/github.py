from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from integrations.types.base import ConnectionType, FieldSpec, https_url_unless_loopback
from integrations.types.http_probe import http_probe_call
from integrations.types.probing import HealthResult, ProbeContext, healthy, unhealthy
from synthorg import url_policy
from synthorg.config import get_config
from synthorg.egress import normalize_host

DEFAULT_API_URL = "https://api.github.com"
GITHUB_API_HOST = "api.github.com"


def allowed_api_hosts() -> frozenset[str]:
    """The hosts a GitHub token may go to: api.github.com and the operator's GitHub Enterprise hosts.

    Exact names only (issue 12). No ``*.ghe.com``: anyone can own a GitHub Enterprise Cloud
    tenant, so ``api.<their-tenant>.ghe.com`` would receive our token; a tenant's API host
    (``api.acme.ghe.com``) is listed in ``integrations.health.github_allowed_hosts`` like a
    GitHub Enterprise Server host.
    """
    configured = get_config().integrations.health.github_allowed_hosts
    return frozenset({GITHUB_API_HOST, *(normalize_host(h) for h in configured)})


def token_host_allowed(host: str) -> bool:
    """May the token be sent to ``host``?"""
    return url_policy.host_allowed(host, allowed_api_hosts())


def probe(context: ProbeContext) -> HealthResult:
    api_url = str(context.values.get("api_url") or DEFAULT_API_URL).rstrip("/")
    try:
        # The same reading synthorg.http connects by; a URL stored before the rule is refused here.
        host = url_policy.check_https_url(api_url).host
    except url_policy.UnsafeURL as exc:
        return unhealthy(f"token not sent: api_url {exc}")
    if not token_host_allowed(host):
        # Checked before any request: a mistyped or hostile api_url must not receive the token.
        return unhealthy(f"token not sent: {host} is not a GitHub API host; add it to "
                         "integrations.health.github_allowed_hosts if it is your GitHub Enterprise host")
    # The wrapper checks the allowlist again on the host it actually connects to.
    response = http_probe_call(context, "GET", f"{api_url}/user", allowed_hosts=allowed_api_hosts(), headers={
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
    return replace(healthy(f"authenticated as {login}" if isinstance(login, str) else "authenticated"),
                   credential_expires_at=token_expiration(response.headers.get(TOKEN_EXPIRATION_HEADER)))


# Sent with fine-grained and expiring classic tokens, e.g. "2026-01-30 18:55:41 UTC".
TOKEN_EXPIRATION_HEADER = "github-authentication-token-expiration"  # noqa: S105  (a header name)


def token_expiration(value: str | None) -> datetime | None:
    """The header's time, or None when absent or unreadable (a token without expiry sends none)."""
    if not value:
        return None
    for fmt in ("%Y-%m-%d %H:%M:%S %Z", "%Y-%m-%d %H:%M:%S %z"):
        try:
            parsed = datetime.strptime(value.strip(), fmt)
        except ValueError:
            continue
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    return None


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
