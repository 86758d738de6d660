"""The console: sinks, rules and problems pages, the "Send test alert" and "Acknowledge" actions
(each behind its permission, CSRF-protected POSTs), the Problems card, no secret in any page."""
from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse

from notifications import services
from notifications.models import Alert, Problem
from tests.notifications.conftest import http_connection, unhealthy
from tests.peers.http_peer import Reply

pytestmark = pytest.mark.django_db


@pytest.fixture
def hook(http_peer: Any) -> Any:
    http_peer.script("/hook", Reply(200))
    receiver = http_connection(http_peer.url("/hook"), name="receiver")
    return services.sink_create(name="hook", kind="webhook", connection=receiver.name)


def test_pages_render_without_secrets(root_console: Any, hook: Any) -> None:
    unhealthy(http_connection("http://127.0.0.1:9/x", name="watched"))
    secret = hook.shown_once["signing_secret"]
    problem = Problem.objects.get()
    for url in (reverse("admin:notifications_notificationsink_changelist"),
                reverse("admin:notifications_notificationsink_change", args=[hook.sink.pk]),
                reverse("admin:notifications_alertrule_changelist"),
                reverse("admin:notifications_problem_changelist"),
                reverse("admin:notifications_problem_change", args=[problem.pk]),
                reverse("admin:notifications_alert_changelist"),
                reverse("admin:index")):
        response = root_console.get(url)
        assert response.status_code == 200, url
        html = response.content.decode()
        assert secret not in html and hook.sink.secret_ciphertext not in html


def test_send_test_alert_action_needs_its_permission(console: Any, hook: Any, http_peer: Any) -> None:
    url = reverse("admin:notifications_notificationsink_changelist")
    data = {"action": "send_test_alert", "_selected_action": [hook.sink.pk]}
    viewer = console("notifications.view_notificationsink")
    assert "send_test_alert" not in viewer.get(url).content.decode()  # hidden without the permission
    viewer.post(url, data)
    assert not Alert.objects.exists()
    tester = console("notifications.view_notificationsink", "notifications.test_notificationsink")
    assert "Send test alert" in tester.get(url).content.decode()
    assert tester.post_without_token(url, data).status_code == 403  # CSRF
    assert not Alert.objects.exists()
    response = tester.post(url, data, follow=True)
    assert "Test alert sent through hook" in response.content.decode()
    assert Alert.objects.get().status == "sent"
    assert [r.path for r in http_peer.received] == ["/hook"]


def test_acknowledge_action(console: Any) -> None:
    unhealthy(http_connection("http://127.0.0.1:9/x", name="watched"))
    problem = Problem.objects.get()
    url = reverse("admin:notifications_problem_changelist")
    data = {"action": "acknowledge", "_selected_action": [problem.pk]}
    console("notifications.view_problem").post(url, data)
    assert Problem.objects.get().acknowledged_at is None
    operator = console("notifications.view_problem", "notifications.change_problem")
    operator.post(url, data)
    assert Problem.objects.get().acknowledged_by == operator.user.username


def test_problems_card_on_the_dashboard(console: Any) -> None:
    unhealthy(http_connection("http://127.0.0.1:9/x", name="watched"))
    html = console("notifications.view_problem").get(reverse("admin:index")).content.decode()
    assert "Problems" in html and "?state__exact=open" in html and "not acknowledged" in html
    other = console("integrations.view_connection").get(reverse("admin:index")).content.decode()
    assert "?state__exact=open" not in other  # the card only for those who may read problems


def test_sink_change_form_goes_through_the_service(root_console: Any, hook: Any, mail_peer: Any) -> None:
    from synthorg.models import AuditEvent
    from tests.notifications.conftest import smtp_connection

    relay = smtp_connection(mail_peer.port)
    url = reverse("admin:notifications_notificationsink_change", args=[hook.sink.pk])
    # A webhook sink cannot move to an smtp connection: the form says so, nothing is stored.
    response = root_console.post(url, {"name": "hook", "connection": relay.pk, "settings": "{}", "enabled": "on"})
    assert response.status_code == 200 and "generic_http" in response.content.decode()
    hook.sink.refresh_from_db()
    assert hook.sink.connection.name == "receiver"
    other = http_connection("http://127.0.0.1:9/other", name="other-receiver")
    response = root_console.post(url, {"name": "hook", "connection": other.pk, "settings": "{}", "enabled": "on"})
    assert response.status_code == 200 and "bound to its receiver" in response.content.decode()
    response = root_console.post(url, {"name": "hook", "connection": hook.sink.connection_id, "settings": "{}"})
    assert response.status_code == 302
    hook.sink.refresh_from_db()
    assert hook.sink.enabled is False
    assert AuditEvent.objects.filter(action="notifications.sink_update").exists()


def test_problems_and_the_alert_outbox_cannot_be_deleted_from_the_console(root_console: Any, hook: Any) -> None:
    # The outbox holds alerts not yet sent, and a problem's history is the record of what was
    # announced: even a superuser gets no delete, bulk or single.
    unhealthy(http_connection("http://127.0.0.1:9/x", name="watched"))
    problem, alert = Problem.objects.get(), Alert.objects.get()
    for model, obj in (("problem", problem), ("alert", alert)):
        changelist = reverse(f"admin:notifications_{model}_changelist")
        assert "delete_selected" not in root_console.get(changelist).content.decode()
        root_console.post(changelist, {"action": "delete_selected", "_selected_action": [obj.pk], "post": "yes"})
        delete = root_console.get(reverse(f"admin:notifications_{model}_delete", args=[obj.pk]))
        assert delete.status_code == 403
    assert Problem.objects.filter(pk=problem.pk).exists() and Alert.objects.filter(pk=alert.pk).exists()


def test_rules_are_written_through_the_services_from_the_console(root_console: Any, hook: Any) -> None:
    from notifications.models import AlertRule
    from synthorg.models import AuditEvent

    AlertRule.objects.all().delete()  # the data migration's defaults are not this test's
    add = reverse("admin:notifications_alertrule_add")
    form = {"name": "ops", "events": '["connection.unhealthy"]', "connection_types": "[]", "params": "{}",
            "sinks": [hook.sink.pk], "enabled": "on"}
    # The service's rules are form errors, and nothing is stored.
    bad = root_console.post(add, {**form, "events": '["no.such.event"]', "reminder_interval_seconds": "5"})
    assert bad.status_code == 200 and "a non-empty list of" in bad.content.decode()
    assert "null (no reminders) or at least 60" in bad.content.decode()
    assert not AlertRule.objects.exists()

    assert root_console.post(add, form).status_code == 302
    rule = AlertRule.objects.get(name="ops")
    assert list(rule.sinks.all()) == [hook.sink]
    change = reverse("admin:notifications_alertrule_change", args=[rule.pk])
    assert root_console.post(change, {**form, "reminder_interval_seconds": "3600", "sinks": []}).status_code == 302
    rule.refresh_from_db()
    assert rule.reminder_interval_seconds == 3600 and not rule.sinks.exists()
    delete = reverse("admin:notifications_alertrule_delete", args=[rule.pk])
    assert root_console.post(delete, {"post": "yes"}).status_code == 302
    assert not AlertRule.objects.exists()
    assert list(AuditEvent.objects.filter(target="ops").order_by("pk").values_list("action", flat=True)) == [
        "notifications.rule_create", "notifications.rule_update", "notifications.rule_delete"]
