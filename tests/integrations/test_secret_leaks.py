"""Canary-leak test: a secret value appears nowhere but the audited reveal.

Connections holding unique canary values are created and changed through the API, the admin
and the commands; then every surface is searched for the canary: API responses (including
error bodies and the OpenAPI schema), admin pages (list, change, delete confirmation, history,
`__str__`, LogEntry rows, the audit admin), the DEBUG error page, logs captured at DEBUG level
(SQL included), audit events, command output, Celery task messages, and every column of every
database table. The reveal itself must return the canary, and the scans are proven able to
find a canary where one is planted, so none of these checks can pass vacuously.
"""
from __future__ import annotations

import io
import json
import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from celery import signals
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.db import connection as db_connection
from django.test import Client
from django.urls import reverse
from django.views.debug import SafeExceptionReporterFilter, get_default_exception_reporter_filter
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from integrations import services
from integrations.models import Connection
from synthorg.models import AuditEvent

pytestmark = pytest.mark.django_db

CANARY = f"canary-{uuid.uuid4().hex}"
ADD_URL = reverse("admin:integrations_connection_add")
LIST_URL = reverse("admin:integrations_connection_changelist")


def secret(label: str) -> str:
    return f"{CANARY}-{label}"


@dataclass
class World:
    """Everything the flows produced: surface name → text, plus what the reveal returned."""

    surfaces: dict[str, str] = field(default_factory=dict)
    revealed: str | None = None
    task_messages: list[str] = field(default_factory=list)

    def add(self, name: str, content: Any) -> None:
        if isinstance(content, bytes):
            content = content.decode("utf-8", "replace")
        self.surfaces[name] = content if isinstance(content, str) else json.dumps(content, default=str)

    def leaks(self, prefix: str = "") -> list[str]:
        return sorted(name for name, text in self.surfaces.items() if name.startswith(prefix) and CANARY in text)


def _client_for(user: Any) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


def _admin_post_add(admin: Client, world: World, name: str, connection_type: str, data: dict[str, str],
                    label: str) -> Any:
    base = {"name": name, "rate_limit_rpm": "0", "rate_limit_burst": "0", "rate_limit_max_concurrent": "0",
            "health_check_enabled": "on", "metadata": "{}"}
    response = admin.post(f"{ADD_URL}?name={name}&connection_type={connection_type}", {**base, **data})
    world.add(f"admin.{label}", response.content)
    return response


def _run_command(world: World, label: str, *args: str) -> None:
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=out)
    world.add(f"command.{label}", out.getvalue())


def _celery_capture(world: World) -> Iterator[None]:
    def on_publish(sender: Any = None, body: Any = None, headers: Any = None, **kwargs: Any) -> None:
        world.task_messages.append(repr((sender, body, headers)))

    def on_prerun(sender: Any = None, args: Any = None, kwargs: Any = None, **extra: Any) -> None:
        world.task_messages.append(repr((getattr(sender, "name", sender), args, kwargs)))

    signals.before_task_publish.connect(on_publish, weak=False)
    signals.task_prerun.connect(on_prerun, weak=False)
    try:
        yield
    finally:
        signals.before_task_publish.disconnect(on_publish)
        signals.task_prerun.disconnect(on_prerun)


@pytest.fixture
def world(superuser: Any, operator_user: Any, django_user_model: Any, caplog: pytest.LogCaptureFixture,
          settings: Any) -> Iterator[World]:
    settings.SYNTHORG_PUBLIC_URL = "https://hooks.example.com"
    caplog.set_level(logging.DEBUG)  # root logger
    caplog.set_level(logging.DEBUG, logger="django.db.backends")
    world = World()
    api = _client_for(operator_user)
    revealer = django_user_model.objects.create_user(username="auditor", password="pw-auditor-123")
    revealer.user_permissions.add(Permission.objects.get(codename="reveal_secret"))
    reveal_api = _client_for(revealer)
    admin = Client()
    admin.force_login(superuser)

    previous_force = db_connection.force_debug_cursor
    db_connection.force_debug_cursor = True  # SQL and its parameters go to the DEBUG log too
    capture = _celery_capture(world)
    next(capture)
    try:
        # --- API --------------------------------------------------------------------------------
        r = api.post("/api/v1/connections", {"name": "gh-api", "connection_type": "github", "credentials": {
            "token": secret("api-token"), "signing_secret": secret("api-signing")}}, format="json")
        assert r.status_code == 201, r.content
        world.add("api.create", r.content)
        r = api.post("/api/v1/connections", {"name": "mail", "connection_type": "smtp", "credentials": {
            "host": "smtp.example.com", "username": "bot", "password": secret("smtp-password")}}, format="json")
        assert r.status_code == 201, r.content
        world.add("api.create_smtp", r.content)
        r = api.post("/api/v1/connections", {"name": "hook", "connection_type": "generic_http", "credentials": {
            "base_url": "https://api.example.com", "api_key": secret("http-api-key"),
            "signing_secret": secret("http-signing")}}, format="json")
        assert r.status_code == 201, r.content
        world.add("api.create_http", r.content)
        # Error bodies must not echo what was sent.
        r = api.post("/api/v1/connections", {"name": "bad", "connection_type": "github", "credentials": {
            "token": secret("rejected-token"), "api_url": "http://plain.example.com"}}, format="json")
        assert r.status_code == 422, r.content
        world.add("api.create_422", r.content)
        r = api.post("/api/v1/connections", {"name": "bad2", "connection_type": "github", "credentials": {
            "tokn": secret("unknown-field")}}, format="json")
        assert r.status_code == 422, r.content
        world.add("api.create_unknown_field", r.content)
        r = api.post("/api/v1/connections", {"name": "bad3", "connection_type": "github",
                                             "credentials": secret("wrong-shape")}, format="json")
        assert r.status_code == 400, r.content
        world.add("api.create_400", r.content)
        r = api.post("/api/v1/connections", {"name": "gh-api", "connection_type": "github", "credentials": {
            "token": secret("duplicate")}}, format="json")
        assert r.status_code == 409, r.content
        world.add("api.create_409", r.content)
        # A destination change gives every secret again (issue 12).
        r = api.patch("/api/v1/connections/gh-api", {"credentials": {"token": secret("api-token-v2"),
                                                                     "signing_secret": secret("api-signing-v2"),
                                                                     "api_url": "https://ghe.example.com"}},
                      format="json")
        assert r.status_code == 200, r.content
        world.add("api.patch", r.content)
        r = api.patch("/api/v1/connections/gh-api", {"credentials": {"signing_secret": 12}}, format="json")
        world.add("api.patch_422", r.content)
        for label, url in (("list", "/api/v1/connections"), ("list_github", "/api/v1/connections?connection_type="
                                                                            "github"),
                           ("detail", "/api/v1/connections/gh-api"), ("detail_smtp", "/api/v1/connections/mail"),
                           ("types", "/api/v1/connections/types"), ("audit", "/api/v1/audit-events?page_size=500"),
                           ("schema", "/api/schema/"), ("schema_json", "/api/schema/?format=json")):
            r = api.get(url)
            assert r.status_code == 200, (url, r.status_code)
            world.add(f"api.{label}", r.content)
        # Reveal: refused without the permission (uniform 404), returned with it.
        r = api.get("/api/v1/connections/gh-api/secrets/token")
        assert r.status_code == 404
        world.add("api.reveal_denied", r.content)
        r = reveal_api.get("/api/v1/connections/gh-api/secrets/nope")
        world.add("api.reveal_unknown_field", r.content)
        r = reveal_api.get("/api/v1/connections/gh-api/secrets/token")
        assert r.status_code == 200, r.content
        world.revealed = r.json()["value"]

        # --- admin ------------------------------------------------------------------------------
        response = _admin_post_add(admin, world, "gh-admin", "github", {
            "field_token": secret("admin-token"), "field_api_url": "https://api.github.com",
            "field_signing_secret": secret("admin-signing")}, "add")
        assert response.status_code == 302, response.content
        response = _admin_post_add(admin, world, "gh-rejected", "github", {
            "field_token": secret("admin-rejected"), "field_api_url": "http://plain.example.com"}, "add_error")
        assert response.status_code == 200 and response.context["adminform"].form.errors
        response = _admin_post_add(admin, world, "db", "database", {
            "field_dialect": "postgres", "field_host": "db.internal", "field_port": "5432",
            "field_username": "app", "field_password": secret("db-password"), "field_database": "app"}, "add_db")
        assert response.status_code == 302, response.content
        gh_admin = Connection.objects.get(name="gh-admin")
        change = reverse("admin:integrations_connection_change", args=[gh_admin.pk])
        response = admin.post(change, {
            "field_api_url": "https://api.github.com", "field_token": "",
            "field_signing_secret": secret("admin-signing-v2"), "rate_limit_rpm": "60", "rate_limit_burst": "0",
            "rate_limit_max_concurrent": "0", "health_check_enabled": "on", "metadata": "{}"})
        assert response.status_code == 302, response.content
        response = admin.post(change, {
            "field_api_url": "https://api.github.com", "field_token": secret("admin-token-refused"),
            "clear_token": "on", "rate_limit_rpm": "60", "rate_limit_burst": "0", "rate_limit_max_concurrent": "0",
            "health_check_enabled": "on", "metadata": "{}"})
        assert response.status_code == 200
        world.add("admin.change_error", response.content)
        doomed = services.connection_create(name="doomed", connection_type="slack",
                                            credentials={"token": secret("doomed-token")})
        doomed_delete = reverse("admin:integrations_connection_delete", args=[doomed.pk])
        world.add("admin.delete_confirmation", admin.get(doomed_delete).content)
        assert admin.post(doomed_delete, {"post": "yes"}).status_code == 302
        for connection in Connection.objects.all():
            for view in ("change", "history", "delete"):
                url = reverse(f"admin:integrations_connection_{view}", args=[connection.pk])
                world.add(f"admin.{view}.{connection.name}", admin.get(url).content)
            world.add(f"admin.str.{connection.name}", str(connection))
        world.add("admin.changelist", admin.get(LIST_URL).content)
        world.add("admin.changelist_search", admin.get(LIST_URL, {"q": "gh"}).content)
        world.add("admin.add_step1", admin.get(ADD_URL).content)
        world.add("admin.bulk_delete_confirmation", admin.post(LIST_URL, {
            "action": "delete_selected", "_selected_action": list(Connection.objects.values_list("pk", flat=True))
        }).content)
        audit_list = reverse("admin:synthorg_auditevent_changelist")
        world.add("admin.audit_list", admin.get(audit_list).content)
        for event in AuditEvent.objects.all():
            world.add(f"admin.audit.{event.pk}",
                      admin.get(reverse("admin:synthorg_auditevent_change", args=[event.pk])).content)
        world.add("admin.logentries", [
            (e.object_repr, e.change_message, e.get_change_message(), str(e)) for e in LogEntry.objects.all()])

        # --- commands ---------------------------------------------------------------------------
        _run_command(world, "list", "connections", "list")
        _run_command(world, "list_json", "connections", "list", "--json")
        _run_command(world, "show", "connections", "show", "gh-api")
        _run_command(world, "show_admin", "connections", "show", "gh-admin")
        _run_command(world, "integrations_config", "integrations_config")
        _run_command(world, "integrations_config_json", "integrations_config", "--format", "json")
        out = io.StringIO()
        call_command("connections", "create", "cli", "--type", "slack", stdout=out, stderr=out,
                     stdin=io.StringIO(json.dumps({"token": secret("cli-token")})))
        world.add("command.create", out.getvalue())
    finally:
        db_connection.force_debug_cursor = previous_force
        next(capture, None)

    world.add("audit.events", list(AuditEvent.objects.values()))
    world.add("logs.text", caplog.text)
    world.add("logs.records", [(r.name, r.msg, repr(r.args), r.exc_text) for r in caplog.records])
    world.add("celery.messages", world.task_messages)
    yield world


def test_reveal_with_permission_returns_the_canary(world: World) -> None:
    assert world.revealed == secret("api-token-v2")


def test_api_responses_hold_no_canary(world: World) -> None:
    assert world.surfaces["api.schema"]  # the schema was really fetched
    assert world.leaks("api.") == []


def test_admin_pages_hold_no_canary(world: World) -> None:
    assert "gh-admin" in world.surfaces["admin.changelist"]
    assert any(name.startswith("admin.history.") for name in world.surfaces)
    assert world.leaks("admin.") == []


def test_logs_at_debug_level_hold_no_canary(world: World) -> None:
    # The capture really ran at DEBUG, SQL included: the secret rows were logged as ciphertext.
    assert "integrations_secretrecord" in world.surfaces["logs.text"]
    assert world.leaks("logs.") == []


def test_audit_events_hold_no_canary(world: World) -> None:
    actions = {e.action for e in AuditEvent.objects.all()}
    assert {"connection.create", "connection.update", "connection.delete", "secret.reveal"} <= actions
    assert world.leaks("audit.") == []


def test_command_output_holds_no_canary(world: World) -> None:
    assert "gh-api" in world.surfaces["command.list"]
    assert world.leaks("command.") == []


def test_celery_messages_hold_no_canary(world: World) -> None:
    # No task is sent by this capability yet; whatever is sent must not carry a secret.
    assert world.leaks("celery.") == []


def _columns_holding(needle: str) -> list[str]:
    """Every column of every table whose text form contains `needle`."""
    found = []
    with db_connection.cursor() as cursor:
        for table in db_connection.introspection.table_names(cursor):
            for column in db_connection.introspection.get_table_description(cursor, table):
                qt, qc = db_connection.ops.quote_name(table), db_connection.ops.quote_name(column.name)
                cursor.execute(f"SELECT COUNT(*) FROM {qt} WHERE CAST({qc} AS TEXT) LIKE %s",  # noqa: S608
                               [f"%{needle}%"])
                if cursor.fetchone()[0]:
                    found.append(f"{table}.{column.name}")
    return found


def test_database_holds_only_ciphertext(world: World) -> None:
    # Plant a canary in a plain column first, so a scan that finds nothing is a scan that works.
    control = f"{CANARY}-control"
    Connection.objects.filter(name="gh-api").update(metadata={"note": control})
    assert _columns_holding(control) == ["integrations_connection.metadata"]
    Connection.objects.filter(name="gh-api").update(metadata={})
    assert _columns_holding(CANARY) == []


# --- the DEBUG error page -----------------------------------------------------------------------

class AlwaysActiveFilter(SafeExceptionReporterFilter):
    """What the service needs in DEBUG (see the test below): Django's filter turns itself off when DEBUG."""

    def is_active(self, request: Any) -> bool:
        return True


@pytest.fixture(autouse=True)
def fresh_reporter_filter() -> Iterator[None]:
    # Django caches the filter instance for the process: each test must see its own settings.
    get_default_exception_reporter_filter.cache_clear()
    yield
    get_default_exception_reporter_filter.cache_clear()


def _debug_500_page(superuser: Any, settings: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    settings.DEBUG = True

    def audit_store_down(**kwargs: Any) -> None:
        raise RuntimeError("audit store unavailable")

    # The failure happens deep in the save, while the secret is in the service's local variables.
    monkeypatch.setattr(services, "audit_record", audit_store_down)
    admin = Client(raise_request_exception=False)
    admin.force_login(superuser)
    response = admin.post(f"{ADD_URL}?name=gh-debug&connection_type=github", {
        "name": "gh-debug", "field_token": secret("debug-token"), "field_api_url": "https://api.github.com",
        "rate_limit_rpm": "0", "rate_limit_burst": "0", "rate_limit_max_concurrent": "0", "metadata": "{}"})
    assert response.status_code == 500
    page = response.content.decode()
    assert "audit store unavailable" in page and "Local vars" in page  # it is the technical page
    return page


def test_debug_error_page_with_active_filter_hides_canary(superuser: Any, settings: Any,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    settings.DEFAULT_EXCEPTION_REPORTER_FILTER = f"{__name__}.AlwaysActiveFilter"
    page = _debug_500_page(superuser, settings, monkeypatch)
    assert "********" in page  # the admin's sensitive_variables / sensitive_post_parameters did their work
    assert CANARY not in page
    assert not Connection.objects.filter(name="gh-debug").exists()


def test_debug_error_page_with_project_settings_hides_canary(superuser: Any, settings: Any,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    page = _debug_500_page(superuser, settings, monkeypatch)
    assert CANARY not in page


def test_api_error_with_debug_answers_plain_500_without_canary(operator_client: APIClient, settings: Any,
                                                               monkeypatch: pytest.MonkeyPatch,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    settings.DEBUG = True
    caplog.set_level(logging.DEBUG)

    def audit_store_down(**kwargs: Any) -> None:
        raise RuntimeError("audit store unavailable")

    monkeypatch.setattr(services, "audit_record", audit_store_down)
    response = operator_client.post("/api/v1/connections", {"name": "gh-debug", "connection_type": "github",
                                                          "credentials": {"token": secret("debug-api")}},
                                 format="json")
    assert response.status_code == 500
    assert CANARY not in response.content.decode()
    assert "audit store unavailable" in caplog.text  # the traceback was logged ...
    assert CANARY not in caplog.text  # ... without the secret
