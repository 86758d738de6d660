"""Journey 1: log in and see the operator console (the dashboard cards on the admin index)."""
from __future__ import annotations

from typing import Any

import pytest

from integrations import services
from tests.e2e.console import Console, console_fixture  # noqa: F401  (fixture `console`)

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]


def test_logged_in_operator_sees_dashboard_cards_that_link_to_filtered_lists(console: Console,
                                                                             superuser: Any) -> None:
    token = console.canary("ghp_indexCanary_5f1d0c9e7a")
    services.connection_create(name="gh-index", connection_type="github", credentials={"token": token},
                               actor=superuser)
    console.goto("/admin/")
    page = console.page

    cards = page.locator(".synthorg-card h2").all_inner_texts()
    assert {"Connections", "Tunnel"} <= set(cards), cards
    connections = page.locator(".synthorg-card", has=page.locator("h2", has_text="Connections"))
    assert connections.locator("tr", has_text="type github").locator("td").inner_text().strip() == "1"
    console.shot("console-index")

    # A number on a card is a link to the list it counts.
    page.locator("a[href*='connection_type__exact=github']").first.click()
    page.wait_for_url("**/admin/integrations/connection/?connection_type__exact=github")
    assert page.locator("#result_list").get_by_text("gh-index").is_visible()
    assert console.leaks() == []


def test_canary_on_a_page_is_reported(console: Console) -> None:
    # The detector the other journeys rely on: the superuser's name is on every admin page.
    console.canary("root")
    console.goto("/admin/")
    assert any("/admin/" in leak for leak in console.leaks())
    console.canaries.clear()  # the fixture's own check at teardown must pass
