"""Every event source: transitions written by their owners (OAuth re-authorisation, workflow runs)
and conditions found by the periodic evaluation (refresh failing for N minutes, webhook rejections
per 5 minutes, credential expiry incl. GitHub's expiry header, publication backlog, secret backend)."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from unittest import mock

import pytest
import responses
from django.utils import timezone

from integrations import services as connections
from integrations.health import connection_probe
from integrations.models import Connection
from notifications import services
from notifications.models import Alert, Problem
from oauthflow import services as oauth
from oauthflow.grants import TokenSet
from oauthflow.models import OAuthToken
from tests.notifications.conftest import http_connection

pytestmark = pytest.mark.django_db


@pytest.fixture
def sink(http_peer):
    receiver = http_connection(http_peer.url("/hook"))
    return services.sink_create(name="hook", kind="webhook", connection=receiver.name).sink


def _oauth_connection() -> Connection:
    return connections.connection_create(name="idp", connection_type="oauth_app", credentials={
        "client_id": "c", "client_secret": "s", "auth_url": "https://idp.example.com/auth",
        "token_url": "https://idp.example.com/token", "scopes": ["a"]})


def _live(event: str) -> list[Problem]:
    return list(Problem.objects.filter(event=event).exclude(state="resolved"))


def test_token_needing_reauthorisation_opens_and_a_new_grant_resolves(sink) -> None:
    conn = _oauth_connection()
    token = oauth.token_store(connection=conn, grant_type="authorization_code",
                              tokens=TokenSet("at-1", "Bearer", None, 60, ("a",)), requested_scopes=["a"])
    OAuthToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert oauth.token_refresh(token_id=token.pk).result == "reauthorization_required"
    [problem] = _live("oauth.reauthorization_required")
    assert problem.state == "open" and problem.connection_name == "idp"
    assert Alert.objects.filter(problem=problem, kind="opened").count() == 1
    oauth.token_refresh(token_id=token.pk)  # still waiting for the operator: nothing new
    assert Problem.objects.filter(event="oauth.reauthorization_required").count() == 1
    oauth.token_store(connection=conn, grant_type="authorization_code",
                      tokens=TokenSet("at-2", "Bearer", "rt", 3600, ("a",)), requested_scopes=["a"])
    problem.refresh_from_db()
    assert problem.state == "resolved"
    assert Alert.objects.filter(problem=problem, kind="resolved").count() == 1


def test_refresh_failing_opens_only_after_n_minutes(sink) -> None:
    conn = _oauth_connection()
    token = oauth.token_store(connection=conn, grant_type="authorization_code",
                              tokens=TokenSet("at", "Bearer", "rt", 60, ("a",)), requested_scopes=["a"])
    OAuthToken.objects.filter(pk=token.pk).update(failure_count=3, last_error="token endpoint: HTTP 503")
    t0 = timezone.now()
    services.problems_evaluate(now=t0, events=["oauth.refresh_failing"])
    [problem] = _live("oauth.refresh_failing")
    assert problem.state == "pending" and not Alert.objects.exists()
    services.problems_evaluate(now=t0 + timedelta(minutes=14), events=["oauth.refresh_failing"])
    assert not Alert.objects.exists()
    services.problems_evaluate(now=t0 + timedelta(minutes=16), events=["oauth.refresh_failing"])
    problem.refresh_from_db()
    assert problem.state == "open" and Alert.objects.filter(kind="opened").count() == 1
    OAuthToken.objects.filter(pk=token.pk).update(failure_count=0)
    services.problems_evaluate(now=t0 + timedelta(minutes=20), events=["oauth.refresh_failing"])
    problem.refresh_from_db()
    assert problem.state == "resolved" and Alert.objects.filter(kind="resolved").count() == 1


def test_a_short_refresh_hiccup_resolves_silently(sink) -> None:
    conn = _oauth_connection()
    token = oauth.token_store(connection=conn, grant_type="authorization_code",
                              tokens=TokenSet("at", "Bearer", "rt", 60, ("a",)), requested_scopes=["a"])
    OAuthToken.objects.filter(pk=token.pk).update(failure_count=1)
    t0 = timezone.now()
    services.problems_evaluate(now=t0, events=["oauth.refresh_failing"])
    OAuthToken.objects.filter(pk=token.pk).update(failure_count=0)
    services.problems_evaluate(now=t0 + timedelta(minutes=2), events=["oauth.refresh_failing"])
    assert not Alert.objects.exists()


def test_webhook_rejections_over_the_threshold_per_5_minutes(sink) -> None:
    from webhooks.models import RejectionCount

    gh = connections.connection_create(name="gh", connection_type="github",
                                       credentials={"token": "t" * 20, "signing_secret": "s" * 20})
    now = timezone.now().replace(second=30, microsecond=0)
    minute = now.replace(second=0)
    RejectionCount.objects.create(connection_name="gh", reason="bad_signature", minute=minute, count=15)
    services.problems_evaluate(now=now, events=["webhooks.rejections"])
    assert not _live("webhooks.rejections")  # 15 <= 20
    RejectionCount.objects.create(connection_name="gh", reason="stale", minute=minute - timedelta(minutes=2), count=6)
    services.problems_evaluate(now=now, events=["webhooks.rejections"])
    [problem] = _live("webhooks.rejections")
    assert problem.connection_id == gh.pk and problem.details["rejections"] == 21
    services.problems_evaluate(now=now + timedelta(minutes=6), events=["webhooks.rejections"])
    assert not _live("webhooks.rejections")


def test_credential_expiry_within_n_days(sink) -> None:
    conn = http_connection("http://127.0.0.1:9/x", name="static")
    now = timezone.now()
    Connection.objects.filter(pk=conn.pk).update(expires_at=now + timedelta(days=30))
    services.problems_evaluate(now=now, events=["credential.expiring"])
    assert not _live("credential.expiring")
    services.problems_evaluate(now=now + timedelta(days=17), events=["credential.expiring"])
    assert len(_live("credential.expiring")) == 1
    Connection.objects.filter(pk=conn.pk).update(expires_at=now + timedelta(days=400))  # rotated
    services.problems_evaluate(now=now + timedelta(days=18), events=["credential.expiring"])
    assert not _live("credential.expiring")


@responses.activate
def test_github_expiry_header_is_stored_by_the_health_check(sink) -> None:
    gh = connections.connection_create(name="gh", connection_type="github", credentials={"token": "ghp_" + "x" * 20})
    expiry = datetime.now(UTC).replace(microsecond=0) + timedelta(days=3)
    responses.get("https://api.github.com/user", json={"login": "octo"},
                  headers={"github-authentication-token-expiration": expiry.strftime("%Y-%m-%d %H:%M:%S UTC")})
    connection_probe(connection=gh)
    gh.refresh_from_db()
    assert gh.expires_at == expiry
    services.problems_evaluate(events=["credential.expiring"])
    [problem] = _live("credential.expiring")
    assert problem.connection_name == "gh"


def test_publication_backlog(sink) -> None:
    from webhooks.models import Delivery

    gh = connections.connection_create(name="gh", connection_type="github",
                                       credentials={"token": "t" * 20, "signing_secret": "s" * 20})
    now = timezone.now()
    Delivery.objects.create(connection=gh, connection_name="gh", connection_type="github", event_type="push",
                            path_event_type="push", replay_key="k1", body=b"{}", received_at=now)
    services.problems_evaluate(now=now + timedelta(minutes=5), events=["outbox.backlog"])
    assert not _live("outbox.backlog")
    services.problems_evaluate(now=now + timedelta(minutes=11), events=["outbox.backlog"])
    [problem] = _live("outbox.backlog")
    assert problem.details["waiting"] == 1
    Delivery.objects.update(publish_state="published")
    services.problems_evaluate(now=now + timedelta(minutes=12), events=["outbox.backlog"])
    assert not _live("outbox.backlog")


def test_secret_backend_unavailable(sink) -> None:
    conn = http_connection("http://127.0.0.1:9/x", name="vaulted")
    Connection.objects.filter(pk=conn.pk).update(secret_backend="secret_manager_vault",
                                                 health_last_error="secrets unavailable: SecretUnavailable")
    services.problems_evaluate(events=["secrets.unavailable"])
    [problem] = _live("secrets.unavailable")
    assert problem.subject == "secrets:secret_manager_vault"


def test_failing_workflow_runs_open_and_a_success_resolves(sink, settings: Any) -> None:
    from synthorg.http import PermanentError
    from tests.webhooks.receiving import github_body, make_github
    from tests.webhooks.test_publication_and_triggers import receive, rule
    from webhooks import services as webhook_services
    from webhooks.models import WorkflowRun
    from webhooks.workflows import Workflow

    make_github()
    rule("deploy", "*")

    def broken(event: Any, parameters: Any) -> dict[str, Any]:
        raise PermanentError("the target refused", 403)

    with mock.patch("webhooks.services.get_workflow", return_value=Workflow("log_event", broken, lambda p: None)), \
            mock.patch("webhooks.tasks.workflow_run_enqueue", return_value=True):
        webhook_services.delivery_publish(delivery_id=receive(github_body()))
        assert webhook_services.workflow_run_execute(run_id=WorkflowRun.objects.get().pk).status == "failed"
    [problem] = _live("workflow_run.failed")
    assert problem.subject == "workflow:deploy" and problem.connection_name == "gh"
    with mock.patch("webhooks.tasks.workflow_run_enqueue", return_value=True):
        webhook_services.delivery_publish(delivery_id=receive(github_body(number=2)))
        run = WorkflowRun.objects.filter(status="pending").get()
        assert webhook_services.workflow_run_execute(run_id=run.pk).status == "succeeded"
    assert not _live("workflow_run.failed")
    assert sorted(Alert.objects.values_list("kind", flat=True)) == ["opened", "resolved"]


def test_each_rule_keeps_its_own_threshold(sink) -> None:
    from notifications.models import AlertRule

    AlertRule.objects.update(enabled=False)
    services.rule_create(data={"name": "week", "events": ["credential.expiring"], "params": {"expiry_days": 7}})
    services.rule_create(data={"name": "month", "events": ["credential.expiring"], "params": {"expiry_days": 30}})
    conn = http_connection("http://127.0.0.1:9/x", name="static")
    now = timezone.now()
    Connection.objects.filter(pk=conn.pk).update(expires_at=now + timedelta(days=14))
    services.problems_evaluate(now=now, events=["credential.expiring"])
    assert [p.rule.name for p in _live("credential.expiring")] == ["month"]
    services.problems_evaluate(now=now + timedelta(days=8), events=["credential.expiring"])
    assert sorted(p.rule.name for p in _live("credential.expiring")) == ["month", "week"]


def test_missing_master_key_is_no_problem_once_nothing_is_stored_by_encrypted_sqlite(monkeypatch) -> None:
    # With a secret manager the key is needed only while encrypted_sqlite still holds a secret;
    # the evaluator must neither raise nor announce a problem without it.
    monkeypatch.delenv("SYNTHORG_MASTER_KEY")
    services.problems_evaluate(events=["secrets.unavailable"])
    assert not _live("secrets.unavailable")


def test_missing_master_key_while_encrypted_secrets_remain_is_a_problem(sink, monkeypatch) -> None:
    http_connection("http://127.0.0.1:9/x", name="fernet-held")  # stored by encrypted_sqlite
    monkeypatch.delenv("SYNTHORG_MASTER_KEY")
    services.problems_evaluate(events=["secrets.unavailable"])
    [problem] = _live("secrets.unavailable")
    assert problem.subject == "secrets:encrypted_sqlite"
