"""Journey 5: find the Memory MCP server in the admin catalog, install it, verify it (the real
server from tests/peers/node_modules lists its tools) and uninstall it."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from catalog.models import Installation, VerifyJob
from tests.e2e.console import Console, console_fixture  # noqa: F401  (fixture `console`)

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]

CATALOG = "/admin/catalog/installation/catalog/"
NODE_MODULES = Path(__file__).resolve().parents[1] / "peers" / "node_modules"


@pytest.fixture
def offline_catalog(settings: Any) -> None:
    if not (NODE_MODULES / "@modelcontextprotocol" / "server-memory").is_dir():
        pytest.fail("tests/peers/node_modules lacks the MCP servers: run `make npm` (npm ci in tests/peers)")
    # Verify launches the pre-installed server, never npx (no network).
    settings.SYNTHORG_CONFIG_OVERRIDES = {"mcp_catalog": {"node_modules_dir": str(NODE_MODULES),
                                                          "verify_timeout_seconds": 30}}


def test_memory_entry_installs_verifies_and_uninstalls_from_the_catalog_page(console: Console,
                                                                            offline_catalog: None) -> None:
    page = console.page
    console.goto(CATALOG)
    assert page.locator(".catalog-card").count() == 8
    console.shot("console-catalog")

    page.fill("#catalog-q", "memory")
    page.locator("#catalog-search input[type=submit]").click()
    page.wait_for_url("**/catalog/?q=memory")
    card = page.locator(".catalog-card[data-entry-id=memory]")
    assert page.locator(".catalog-card").count() == 1
    assert "not installed" in card.inner_text()
    card.get_by_role("link", name="Open Memory").click()
    page.wait_for_selector("#install-form")

    page.click("#install-button")
    page.wait_for_selector("#uninstall-button")
    assert "installed" in page.locator("#install-state").inner_text()
    assert "memory installed" in (page.locator(".messagelist").text_content() or "").lower()
    assert Installation.objects.filter(entry_id="memory").exists()

    # Celery is eager here: the verify job runs inside the POST, and the page shows its outcome.
    page.click("#verify-button")
    page.wait_for_selector(".verify-job")
    job = VerifyJob.objects.get(entry_id="memory")
    assert job.status == VerifyJob.Status.SUCCEEDED, job.error
    assert page.get_attribute(".verify-job", "data-status") == "succeeded"
    tools = page.locator(".verify-tools li").all_inner_texts()
    assert any("create_entities" in tool for tool in tools), tools
    console.shot("console-catalog-memory-installed")

    page.click("#uninstall-button")
    page.wait_for_selector("#install-button")
    assert "not installed" in page.locator("#install-state").inner_text()
    assert not Installation.objects.filter(entry_id="memory").exists()
    console.goto(CATALOG)
    assert "not installed" in page.locator(".catalog-card[data-entry-id=memory]").inner_text()
    assert console.leaks() == []
