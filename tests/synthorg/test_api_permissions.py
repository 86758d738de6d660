"""Every API endpoint asks the permissions the console asks (issue 12 §3).

The endpoints are enumerated from the URLconf; each (view, method) is declared once below
(`Case`), with the request that exercises it, and four tests are generated for each:

* a staff user holding no permission gets 403 and the database is exactly as before;
* a user holding every service permission except one the action needs gets 403, nothing changed;
* a user holding exactly what `synthorg.permissions.ACTIONS` says it needs succeeds;
* a superuser succeeds.

A new endpoint, or a new method on a view, fails `test_every_endpoint_is_declared` until it is
declared here, so none can be left open by being forgotten.
"""
from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from django.apps import apps
from django.contrib.auth.models import Permission
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from catalog import services as catalog_services
from catalog.api import views as catalog_views
from catalog.models import VerifyJob
from integrations import services as connection_services
from integrations.api import tunnel_views
from integrations.api import views as connection_views
from integrations.models import TunnelState
from notifications import services as notification_services
from notifications.api import views as notification_views
from notifications.models import Problem
from oauthflow.api import views as oauth_views
from providers import services as provider_services
from providers.api import views as provider_views
from synthorg import permissions
from synthorg.api import views as synthorg_views
from synthorg.api.permissions import ActionPermission, view_action
from synthorg.models import AuditEvent
from tests.permissions import SERVICE_APPS, grant
from webhooks import services as webhook_services
from webhooks.api import views as webhook_views
from webhooks.models import WorkflowRun

pytestmark = pytest.mark.django_db

CANARY = "ghp_CANARY_api_permissions_0123456789"
SIGNING = "whsec_CANARY_api_permissions_signing"

# Public by design, each protecting itself (README "Security model").
PUBLIC = {
    (synthorg_views.AuthTokenApi, "post"): "the login (brute-force protected by django-axes)",
    (oauth_views.OAuthCallbackApi, "get"): "the provider's redirect (single-use state bound to the user)",
    ("webhook_receive", "post"): "the webhook receiver (signature checked)",
}


@dataclass(frozen=True)
class Case:
    view: Any
    method: str
    # The request: (path, body) built once the world exists; the query string may be in the path.
    path: Callable[[dict[str, Any]], str]
    body: dict[str, Any] | None = None
    ok: int = 200
    writes: bool = False
    # When the view takes its permission from the input (?force=true), the action it needs.
    action: str | None = None
    denied: int = 403
    # Tables whose rows legitimately change on a refused request (the reveal's audited refusal).
    volatile: tuple[str, ...] = field(default=())
    # Puts the world in the state the request changes (called before each request).
    prepare: Callable[[], None] | None = None

    @property
    def id(self) -> str:
        return f"{self.view.__name__}.{self.method}{'+' + self.action if self.action else ''}"

    def needed(self) -> permissions.Need:
        action = self.action or view_action(self.view, self.method.upper())
        assert action is not None, f"{self.id} declares no action"
        return permissions.need(action)


def _c(name: str) -> Callable[[dict[str, Any]], str]:
    return lambda world: name.format(**world)


CASES = [
    # connections
    Case(connection_views.ConnectionListCreateApi, "get", _c("/api/v1/connections")),
    Case(connection_views.ConnectionListCreateApi, "post", _c("/api/v1/connections"), ok=201, writes=True,
         body={"name": "new-one", "connection_type": "generic_http",
               "credentials": {"base_url": "http://127.0.0.1:9/"}}),
    Case(connection_views.ConnectionTypeListApi, "get", _c("/api/v1/connections/types")),
    Case(connection_views.ConnectionDetailApi, "get", _c("/api/v1/connections/gh")),
    Case(connection_views.ConnectionDetailApi, "patch", _c("/api/v1/connections/gh"), writes=True,
         body={"metadata": {"team": "platform"}}),
    Case(connection_views.ConnectionDetailApi, "delete", _c("/api/v1/connections/spare"), ok=204, writes=True),
    Case(connection_views.ConnectionHealthApi, "get", _c("/api/v1/connections/local/health"), writes=True),
    Case(connection_views.ConnectionHealthApi, "get", _c("/api/v1/connections/local/health?force=true"),
         writes=True, action="connection.check"),
    Case(connection_views.HealthListApi, "get", _c("/api/v1/integrations/health")),
    # The reveal answers every refusal, permission included, with the same audited 404.
    Case(connection_views.SecretRevealApi, "get", _c("/api/v1/connections/gh/secrets/token"),
         action="connection.reveal_secret", denied=404, volatile=("synthorg.auditevent",)),
    Case(webhook_views.SigningSecretRotateApi, "post", _c("/api/v1/connections/gh/signing-secret/rotate"),
         body={}, writes=True),
    # tunnel
    Case(tunnel_views.TunnelStartApi, "post", _c("/api/v1/integrations/tunnel/start"), ok=202, writes=True,
         prepare=lambda: TunnelState.objects.update(desired=TunnelState.Desired.STOPPED,
                                                    status=TunnelState.Status.STOPPED, public_url="")),
    Case(tunnel_views.TunnelStopApi, "post", _c("/api/v1/integrations/tunnel/stop"), writes=True),
    Case(tunnel_views.TunnelStatusApi, "get", _c("/api/v1/integrations/tunnel/status")),
    # webhooks
    Case(webhook_views.WebhookActivityApi, "get", _c("/api/v1/webhooks/gh/activity")),
    Case(webhook_views.WebhookActivityApi, "get", _c("/api/v1/webhooks/gh/activity?include_payload=true"),
         action="delivery.view_payload"),
    Case(webhook_views.TriggerRuleListCreateApi, "get", _c("/api/v1/webhooks/triggers")),
    Case(webhook_views.TriggerRuleListCreateApi, "post", _c("/api/v1/webhooks/triggers"), ok=201, writes=True,
         body={"name": "new-rule", "event_type": "*", "workflow": "log_event"}),
    Case(webhook_views.TriggerRuleDetailApi, "get", _c("/api/v1/webhooks/triggers/{rule}")),
    Case(webhook_views.TriggerRuleDetailApi, "patch", _c("/api/v1/webhooks/triggers/{rule}"), writes=True,
         body={"enabled": False}),
    Case(webhook_views.TriggerRuleDetailApi, "delete", _c("/api/v1/webhooks/triggers/{rule}"), ok=204,
         writes=True),
    Case(webhook_views.WorkflowRunListApi, "get", _c("/api/v1/webhooks/runs")),
    Case(webhook_views.WorkflowRunDetailApi, "get", _c("/api/v1/webhooks/runs/{run}")),
    # OAuth
    Case(oauth_views.OAuthInitiateApi, "post", _c("/api/v1/oauth/initiate"), writes=True,
         body={"connection_name": "idp", "grant_type": "authorization_code"}),
    Case(oauth_views.OAuthStatusApi, "get", _c("/api/v1/oauth/status/idp")),
    # MCP catalog
    Case(catalog_views.CatalogListApi, "get", _c("/api/v1/integrations/mcp/catalog")),
    Case(catalog_views.CatalogSearchApi, "get", _c("/api/v1/integrations/mcp/catalog/search?q=memory")),
    Case(catalog_views.CatalogEntryApi, "get", _c("/api/v1/integrations/mcp/catalog/memory")),
    Case(catalog_views.InstallApi, "post", _c("/api/v1/integrations/mcp/catalog/install"), writes=True,
         body={"entry_id": "puppeteer"}),
    Case(catalog_views.UninstallApi, "delete", _c("/api/v1/integrations/mcp/catalog/install/memory"), ok=204,
         writes=True),
    Case(catalog_views.VerifyApi, "post", _c("/api/v1/integrations/mcp/catalog/install/memory/verify"), ok=202,
         writes=True),
    Case(catalog_views.VerifyJobApi, "get", _c("/api/v1/integrations/mcp/verify-jobs/{job}")),
    Case(catalog_views.InstalledListApi, "get", _c("/api/v1/integrations/mcp/installed")),
    Case(catalog_views.McpConfigApi, "get", _c("/api/v1/integrations/mcp/config")),
    # providers
    Case(provider_views.ProviderListCreateApi, "get", _c("/api/v1/providers")),
    Case(provider_views.ProviderListCreateApi, "post", _c("/api/v1/providers"), ok=201, writes=True,
         body={"name": "second", "driver": "openai", "model": "gpt-4o", "connection_name": "llm"}),
    Case(provider_views.ProviderDetailApi, "get", _c("/api/v1/providers/main")),
    Case(provider_views.ProviderDetailApi, "patch", _c("/api/v1/providers/main"), writes=True,
         body={"model": "gpt-4.1"}),
    Case(provider_views.ProviderDetailApi, "delete", _c("/api/v1/providers/main"), ok=204, writes=True),
    Case(provider_views.ProviderResolveCheckApi, "post", _c("/api/v1/providers/main/resolve-check")),
    # audit log
    Case(synthorg_views.AuditEventListApi, "get", _c("/api/v1/audit-events")),
    # alerts (issue 16)
    Case(notification_views.SinkListCreateApi, "get", _c("/api/v1/integrations/notifications/sinks")),
    Case(notification_views.SinkListCreateApi, "post", _c("/api/v1/integrations/notifications/sinks"), ok=201,
         writes=True, body={"name": "new-sink", "kind": "webhook", "connection": "local"}),
    Case(notification_views.SinkDetailApi, "get", _c("/api/v1/integrations/notifications/sinks/{sink}")),
    Case(notification_views.SinkDetailApi, "patch", _c("/api/v1/integrations/notifications/sinks/{sink}"),
         writes=True, body={"enabled": False}),
    Case(notification_views.SinkDetailApi, "delete", _c("/api/v1/integrations/notifications/sinks/{sink}"),
         ok=204, writes=True),
    Case(notification_views.SinkTestApi, "post", _c("/api/v1/integrations/notifications/sinks/{sink}/test"),
         writes=True),
    Case(notification_views.RuleListCreateApi, "get", _c("/api/v1/integrations/notifications/rules")),
    Case(notification_views.RuleListCreateApi, "post", _c("/api/v1/integrations/notifications/rules"), ok=201,
         writes=True, body={"name": "new-alert-rule", "events": ["connection.unhealthy"]}),
    Case(notification_views.RuleDetailApi, "get", _c("/api/v1/integrations/notifications/rules/{alert_rule}")),
    Case(notification_views.RuleDetailApi, "patch", _c("/api/v1/integrations/notifications/rules/{alert_rule}"),
         writes=True, body={"enabled": False}),
    Case(notification_views.RuleDetailApi, "delete", _c("/api/v1/integrations/notifications/rules/{alert_rule}"),
         ok=204, writes=True),
    Case(notification_views.ProblemListApi, "get", _c("/api/v1/integrations/notifications/problems")),
    Case(notification_views.ProblemDetailApi, "get", _c("/api/v1/integrations/notifications/problems/{problem}")),
    Case(notification_views.ProblemAcknowledgeApi, "post",
         _c("/api/v1/integrations/notifications/problems/{problem}/acknowledge"), writes=True),
]
IDS = [case.id for case in CASES]


# --- the URLconf ---------------------------------------------------------------------------------

def _api_patterns(patterns: list[Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for pattern in patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            yield from _api_patterns(pattern.url_patterns, route)
        elif isinstance(pattern, URLPattern) and route.startswith("api/v1/"):
            yield route, pattern.callback


def _endpoints() -> set[tuple[Any, str]]:
    found: set[tuple[Any, str]] = set()
    for _, callback in _api_patterns(get_resolver().url_patterns):
        view = getattr(callback, "cls", None) or getattr(callback, "view_class", None)
        if view is None:
            found.add((callback.__name__, "post"))
            continue
        for method in ("get", "post", "put", "patch", "delete"):
            if hasattr(view, method):
                found.add((view, method))
    return found


def test_every_endpoint_is_declared() -> None:
    declared = {(case.view, case.method) for case in CASES} | set(PUBLIC)

    assert _endpoints() == declared


def test_every_declared_view_asks_the_action_table() -> None:
    for case in CASES:
        if case.view is connection_views.SecretRevealApi:
            continue  # the service checks connection.reveal_secret (uniform audited 404)
        assert any(isinstance(p, ActionPermission) for p in case.view().get_permissions()), case.id
        case.needed()  # the action exists in synthorg.permissions.ACTIONS


# --- the world every request runs against --------------------------------------------------------

@pytest.fixture
def world(settings: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    agent = tmp_path / "ngrok"
    agent.write_text("#!/bin/sh\nexit 0\n")
    agent.chmod(0o755)
    monkeypatch.setenv("PERMS_NGROK_TOKEN", "ngrok-token-not-shown-0002")
    settings.SYNTHORG_CONFIG_OVERRIDES = {
        "oauth": {"redirect_uri_base": "http://testserver"},
        "tunnel": {"enabled": True, "auth_token_env": "PERMS_NGROK_TOKEN", "ngrok_path": str(agent)}}
    connection_services.connection_create(name="gh", connection_type="github",
                                          credentials={"token": CANARY, "signing_secret": SIGNING})
    connection_services.connection_create(name="spare", connection_type="generic_http",
                                          credentials={"base_url": "http://127.0.0.1:9/"})
    connection_services.connection_create(name="local", connection_type="generic_http",
                                          credentials={"base_url": "http://127.0.0.1:9/"})
    connection_services.connection_create(name="llm", connection_type="generic_http",
                                          credentials={"base_url": "http://127.0.0.1:9/", "token": CANARY})
    connection_services.connection_create(name="idp", connection_type="oauth_app", credentials={
        "client_id": "perms-client", "client_secret": "perms-client-secret-value",
        "auth_url": "http://127.0.0.1:9/authorize", "token_url": "http://127.0.0.1:9/token",
        "scopes": ["api:read"]})
    provider_services.provider_create(name="main", driver="openai", model="gpt-4o", connection_name="llm")
    rule = webhook_services.trigger_rule_create(data={"name": "rule", "event_type": "*", "workflow": "log_event"})
    run = WorkflowRun.objects.create(rule_name="rule", workflow="log_event", event_id=uuid.uuid4(),
                                     status=WorkflowRun.Status.FAILED, attempts=3, error="boom")
    catalog_services.installation_install(entry_id="memory")
    job = VerifyJob.objects.create(entry_id="memory", requested_by="setup")
    TunnelState.objects.create(pk=1, desired=TunnelState.Desired.RUNNING, status=TunnelState.Status.RUNNING,
                               public_url="https://perms-test.ngrok.example")
    sink = notification_services.sink_create(name="ops", kind="webhook", connection="local").sink
    alert_rule = notification_services.rule_create(data={"name": "alerts", "events": ["connection.unhealthy"]})
    problem = Problem.objects.create(rule=alert_rule, event="connection.unhealthy", subject="connection:0",
                                     title="x is unhealthy", first_seen_at=timezone.now())
    return {"rule": rule.pk, "run": run.pk, "job": job.pk, "sink": sink.pk, "alert_rule": alert_rule.pk,
            "problem": problem.pk}


def _service_models() -> list[Any]:
    return [model for model in apps.get_models() if model._meta.app_label in SERVICE_APPS]


def _snapshot(skip: tuple[str, ...] = ()) -> dict[str, list[dict[str, Any]]]:
    """Every row of every service table: a refused request leaves all of them as they were."""
    return {model._meta.label_lower: list(model.objects.order_by("pk").values())
            for model in _service_models() if model._meta.label_lower not in skip}


def _client(django_user_model: Any, *perms: str, staff: bool = True, superuser: bool = False) -> APIClient:
    name = f"u{uuid.uuid4().hex[:8]}"
    if superuser:
        user = django_user_model.objects.create_superuser(username=name, password="pw-root-123", email="")
    else:
        user = grant(django_user_model.objects.create_user(username=name, password="pw-user-123", is_staff=staff),
                     *perms)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


def _send(client: APIClient, case: Case, world: dict[str, Any]) -> Any:
    if case.prepare is not None:
        case.prepare()
    call = getattr(client, case.method)
    if case.body is None:
        return call(case.path(world))
    return call(case.path(world), case.body, format="json")


def _all_service_permissions() -> set[str]:
    rows = Permission.objects.filter(content_type__app_label__in=SERVICE_APPS).values_list(
        "content_type__app_label", "codename")
    return {f"{app}.{codename}" for app, codename in rows}


def _minimal(need: permissions.Need) -> tuple[str, ...]:
    return need.all_of + need.any_of[:1]


def _short_of(need: permissions.Need) -> list[tuple[str, set[str]]]:
    """(what is missing, the permissions held): everything but one required permission, or
    everything but all the alternatives."""
    everything = _all_service_permissions()
    lacks = [(perm, everything - {perm}) for perm in need.all_of]
    if need.any_of:
        lacks.append((" / ".join(need.any_of), everything - set(need.any_of)))
    return lacks


# --- the generated cases -------------------------------------------------------------------------

@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_staff_without_permissions_is_refused_and_nothing_changes(case: Case, world: dict[str, Any],
                                                                  django_user_model: Any) -> None:
    client = _client(django_user_model)
    if case.prepare is not None:
        case.prepare()
    before = _snapshot(case.volatile)

    response = _send(client, case, world)

    assert response.status_code == case.denied, response.content
    assert _snapshot(case.volatile) == before
    if case.denied == 403:
        assert response.json()["code"] == "permission_denied"
    assert CANARY not in response.content.decode() and SIGNING not in response.content.decode()


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_holder_of_everything_but_the_needed_permission_is_refused(case: Case, world: dict[str, Any],
                                                                   django_user_model: Any) -> None:
    for missing, held in _short_of(case.needed()):
        client = _client(django_user_model, *sorted(held))
        if case.prepare is not None:
            case.prepare()
        before = _snapshot(case.volatile)

        response = _send(client, case, world)

        assert response.status_code == case.denied, (missing, response.content)
        assert _snapshot(case.volatile) == before, missing
        assert CANARY not in response.content.decode()


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_holder_of_exactly_the_needed_permissions_succeeds(case: Case, world: dict[str, Any],
                                                           django_user_model: Any) -> None:
    client = _client(django_user_model, *_minimal(case.needed()), staff=False)
    if case.prepare is not None:
        case.prepare()
    before = _snapshot()

    response = _send(client, case, world)

    assert response.status_code == case.ok, response.content
    if case.writes:
        assert _snapshot() != before


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_superuser_succeeds(case: Case, world: dict[str, Any], django_user_model: Any) -> None:
    response = _send(_client(django_user_model, superuser=True), case, world)

    assert response.status_code == case.ok, response.content


PLAIN = [c for c in CASES if c.denied == 403 and c.action is None]


@pytest.mark.parametrize("case", PLAIN, ids=[c.id for c in PLAIN])
def test_refusal_names_the_permission_it_needs(case: Case, world: dict[str, Any], django_user_model: Any) -> None:
    response = _send(_client(django_user_model), case, world)

    assert case.needed().describe() in response.json()["detail"]


def test_inactive_superuser_is_refused(world: dict[str, Any], django_user_model: Any) -> None:
    user = django_user_model.objects.create_superuser(username="gone", password="pw-root-123", email="")
    user.is_active = False
    user.save()

    assert not permissions.allowed(user, "connection.view")


def test_anonymous_is_401_everywhere(world: dict[str, Any]) -> None:
    for case in CASES:
        assert _send(APIClient(), case, world).status_code == 401, case.id
    assert not AuditEvent.objects.filter(action="secret.reveal", outcome="success").exists()


def test_a_view_that_names_no_action_is_closed_even_to_a_superuser(django_user_model: Any) -> None:
    from rest_framework.response import Response
    from rest_framework.test import APIRequestFactory, force_authenticate
    from rest_framework.views import APIView

    class Undeclared(APIView):
        permission_actions = {"GET": "connection.view"}

        def get(self, request: Any) -> Response:
            return Response({})

        def post(self, request: Any) -> Response:  # implemented, but no action named for it
            return Response({})

    root = django_user_model.objects.create_superuser(username="root2", password="pw-root-123", email="")
    factory = APIRequestFactory()
    allowed, refused, absent = factory.get("/x"), factory.post("/x"), factory.put("/x")
    for request in (allowed, refused, absent):
        force_authenticate(request, user=root)

    assert Undeclared.as_view()(allowed).status_code == 200
    assert Undeclared.as_view()(refused).status_code == 403
    assert Undeclared.as_view()(absent).status_code == 405
