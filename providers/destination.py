"""Where a provider linked to a connection may send that connection's credential (issue 12).

A provider's consumer sends the credential `resolve_credentials` hands it to the provider's
``base_url``. Without a rule, anyone who may edit provider configs could link a connection
they cannot read to a ``base_url`` of their own and have the key delivered there. The rule:

* a provider linked to a connection **takes its destination from the connection**: an empty
  ``base_url`` means the connection's own URL (`connection_destination`), and a ``base_url``
  inside it (same scheme, host and port, a path under the connection's path) is where the
  connection's owner already sends the secret: free for anyone who may edit providers;
* any other binding (a ``base_url`` elsewhere, or a connection type that declares no URL for
  API calls, as ``oauth_app``, whose access token is sent to a resource server it does not
  name) chooses a new destination for a secret, which is as strong as revealing it: the user
  needs ``integrations.reveal_secret``. Commands at the terminal are trusted. Such a binding
  is recorded (``ProviderConfig.binding_approved``);
* where the key leaves, `resolve_credentials` checks again: a provider outside the
  connection's current URL without an approval gets nothing (``provider_destination_unapproved``),
  and approvals lapse when the connection's owner moves it (`on_connection_moved`), so a key
  given for a new host never goes to the old one or to a place approved for the old key.
"""
from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from integrations.services import SecretBindingForbidden, may_bind_secrets
from synthorg import url_policy
from synthorg.audit import audit_record

GITHUB_DEFAULT_API_URL = "https://api.github.com"
SLACK_API_URL = "https://slack.com/api"


def connection_destination(connection: Any) -> str | None:
    """The URL the connection's owner sends its secret to for API calls, or None if it names none."""
    config = connection.config or {}
    if connection.connection_type == "generic_http":
        return str(config.get("base_url") or "") or None
    if connection.connection_type == "github":
        return str(config.get("api_url") or GITHUB_DEFAULT_API_URL)
    if connection.connection_type == "slack":
        return SLACK_API_URL
    return None  # oauth_app: the token's resource server is not part of the connection


def _within(url: str, destination: str) -> bool:
    try:
        inner, outer = url_policy.check_url(url), url_policy.check_url(destination)
    except ValueError:
        return False
    if (inner.scheme, inner.host, inner.port) != (outer.scheme, outer.host, outer.port):
        return False
    prefix = outer.path.rstrip("/")
    # A path boundary: /v1 covers /v1 and /v1/chat, not /v1-evil.
    return inner.path.rstrip("/") == prefix or inner.path.startswith(prefix + "/")


def within_connection(base_url: str, connection: Any) -> bool:
    """Whether a provider with this ``base_url`` sends the connection's secret only where its owner does."""
    destination = connection_destination(connection)
    if destination is None:
        return False
    return not base_url or _within(base_url, destination)


def effective_base_url(base_url: str, connection: Any) -> str:
    """Where the consumer sends the credential: the provider's URL, else the connection's (else
    empty: the driver's default host)."""
    if base_url or connection is None:
        return base_url
    return connection_destination(connection) or ""


class ProviderBindingForbidden(SecretBindingForbidden):
    """403: the binding sends a connection's secret somewhere its owner did not; carries what
    the audit event of the refusal names (never a value)."""

    def __init__(self, detail: str, *, provider: str, connection: str, base_url: str) -> None:
        super().__init__(detail)
        self.audit_details = {"connection_name": connection, "base_url": base_url}
        self.provider = provider


def require_binding(*, provider: str, connection: Any, base_url: str, actor: Any,
                    request: HttpRequest | None) -> bool:
    """Refuse a user without ``integrations.reveal_secret`` a binding outside the connection's
    destination. True when the binding is outside and allowed: the provider records it as approved."""
    if connection is None or within_connection(base_url, connection):
        return False
    if may_bind_secrets(actor, request):
        return True
    destination = connection_destination(connection)
    where = (f"outside the connection's own URL ({destination})" if destination
             else f"and a {connection.connection_type} connection names no URL its token is for")
    raise ProviderBindingForbidden(
        f"Provider {provider!r} would send the credential of connection {connection.name!r} to "
        f"{base_url or 'the driver default host'}, {where}: choosing where a secret goes needs the "
        "integrations.reveal_secret permission. Leave base_url empty (the connection's URL is used) or set "
        "one under the connection's URL.", provider=provider, connection=connection.name, base_url=base_url)


def approves_as_is(*, connection: Any, base_url: str, actor: Any, request: HttpRequest | None) -> bool:
    """Whether saving an unchanged binding outside the connection's URL approves it (never refuses)."""
    return not within_connection(base_url, connection) and may_bind_secrets(actor, request)


def sends_only_where_bound(provider: Any, connection: Any) -> bool:
    """At run time: inside the connection's current URL, or approved since the connection last moved."""
    return provider.binding_approved or within_connection(provider.base_url, connection)


def on_connection_moved(connection: Any, *, changed: list[str], actor: Any = None,
                        request: HttpRequest | None = None) -> None:
    """The connection's owner moved it (with its secrets): approvals given for the old secret and
    place lapse, so a provider outside the new URL resolves nothing until approved again."""
    from providers.models import ProviderConfig

    for provider in ProviderConfig.objects.select_for_update().filter(connection=connection):
        inside = within_connection(provider.base_url, connection)
        if provider.binding_approved:
            provider.binding_approved = False
            provider.save(update_fields=["binding_approved", "updated_at"])
        if not inside:
            audit_record(action="provider.binding_lapsed", target=provider.name, target_type="provider",
                         actor=actor, request=request, reason="connection_destination_changed",
                         details={"connection_name": connection.name, "changed": list(changed),
                                  "base_url": provider.base_url})


def record_refusal(exc: ProviderBindingForbidden, *, action: str, actor: Any, request: HttpRequest | None) -> None:
    """The refused attempt's audit event, written after the write's transaction rolled back."""
    audit_record(action=action, target=exc.provider, target_type="provider", actor=actor, request=request,
                 outcome="denied", reason=exc.code, details=exc.audit_details)
