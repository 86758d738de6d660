"""Journey 2: add a GitHub connection through the admin's two-step form, then "Check now"
against a stubbed api.github.com and see the health badge turn healthy."""
from __future__ import annotations

from typing import Any

import pytest
import responses

from integrations.models import Connection
from tests.e2e.console import Console, console_fixture  # noqa: F401  (fixture `console`)

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]

CHANGELIST = "/admin/integrations/connection/"


@pytest.fixture
def github_api() -> Any:
    # Patches `requests` in this process, which includes the live server's thread; everything
    # local (the live server itself, other peers) goes through untouched.
    with responses.RequestsMock(assert_all_requests_are_fired=False) as stub:
        stub.add_passthru("http://127.0.0.1")
        stub.add_passthru("http://localhost")
        yield stub


def test_github_connection_added_in_two_steps_turns_healthy_after_check_now(console: Console,
                                                                            github_api: Any) -> None:
    token = console.canary("ghp_journeyCanary_3b9e1f0a7c")
    signing_secret = console.canary("whsec-journey-canary-8d2c4e")
    user = github_api.get("https://api.github.com/user", json={"login": "octocat"})
    page = console.page

    console.goto(CHANGELIST)
    page.get_by_role("link", name="Add connection").click()
    page.fill("#id_name", "gh-journey")
    page.select_option("#id_connection_type", "github")
    console.shot("console-connection-add-step1")
    page.get_by_role("button", name="Next: the fields of this type").click()
    page.wait_for_selector("#id_field_token")
    assert page.get_attribute("#id_field_token", "type") == "password"
    page.fill("#id_field_token", token)
    page.fill("#id_field_signing_secret", signing_secret)
    console.shot("console-connection-add-step2")
    page.click("input[name=_save]")
    page.wait_for_url("**" + CHANGELIST)
    connection = Connection.objects.get(name="gh-journey")
    row = page.locator("#result_list tr", has_text="gh-journey")
    assert row.locator(".health-badge").inner_text().strip().lower() == "unknown"

    row.locator("input[name=_selected_action]").check()
    page.select_option("select[name=action]", "check_now")
    page.click("button[name=index]")
    page.wait_for_selector(".messagelist")

    row = page.locator("#result_list tr", has_text="gh-journey")
    badge = row.locator(".health-badge")
    assert "health-healthy" in (badge.get_attribute("class") or "")
    assert badge.inner_text().strip().lower() == "healthy"
    assert "gh-journey: healthy" in (page.locator(".messagelist").text_content() or "").lower()
    console.shot("console-connections-healthy")
    assert user.call_count == 1
    assert github_api.calls[0].request.headers["Authorization"] == f"Bearer {token}"
    connection.refresh_from_db()
    assert connection.health_status == Connection.HealthStatus.HEALTHY

    # The change page says which secrets are set, never their values; the inputs stay empty.
    page.locator("#result_list a", has_text="gh-journey").click()
    page.wait_for_selector("#id_field_token")
    assert page.input_value("#id_field_token") == ""
    assert "token" in page.locator(".field-secret_fields_display").inner_text()
    console.shot("console-connection-change")
    assert console.leaks() == []
