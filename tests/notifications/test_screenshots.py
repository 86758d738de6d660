"""The README's pictures of alerts, taken in Chromium: the alert email as a mail client shows its
HTML part (received by a real SMTP server), and the console's Problems card. Both are checked
first (the link, the card's numbers); with SYNTHORG_UPDATE_SCREENSHOTS=1 they replace the README's
copies in docs/screenshots/, otherwise they go to tests/screenshots/ (git-ignored)."""
from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from notifications import sending, services
from notifications.models import Problem
from tests.e2e.browser import SCREENSHOTS, admin_login
from tests.notifications.conftest import healthy, http_connection, only_rule, smtp_connection, unhealthy

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True), pytest.mark.timeout(180)]

DOCS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
MAX_BYTES = 150 * 1024


def _target(name: str) -> Path:
    target = DOCS if os.environ.get("SYNTHORG_UPDATE_SCREENSHOTS") == "1" else SCREENSHOTS
    target.mkdir(parents=True, exist_ok=True)
    return target / f"{name}.png"


def test_alert_email_and_problems_card(page: Any, live_server: Any, superuser: Any, mail_peer: Any,
                                       settings: Any) -> None:
    settings.SYNTHORG_PUBLIC_URL = "https://integrations.example.com"
    # A transactional test may run after another flushed the data migration's default rules.
    only_rule(["connection.unhealthy"])
    watched = http_connection("http://127.0.0.1:9/z", name="payments-gateway")
    relay = smtp_connection(mail_peer.port)
    services.sink_create(name="ops-mail", kind="email", connection=relay.name,
                         settings={"to": ["ops@example.com"], "from_address": "alerts@example.com"})
    unhealthy(watched)
    later = timezone.now() + timedelta(seconds=10)
    for alert_id in sending.alerts_due(now=later):
        sending.alert_send(alert_id=alert_id, now=later)
    [message] = mail_peer.messages
    html = message.get_body(("html",)).get_content()
    page.set_viewport_size({"width": 760, "height": 520})
    page.set_content(html)
    link = page.get_by_role("link", name="Open in the console")
    problem = Problem.objects.get()
    assert link.get_attribute("href") == (
        f"https://integrations.example.com/admin/notifications/problem/{problem.pk}/change/")
    email_png = _target("alert-email")
    page.screenshot(path=str(email_png))
    assert email_png.stat().st_size < MAX_BYTES

    for name in ("billing-api", "crm-webhooks"):
        unhealthy(http_connection("http://127.0.0.1:9/x", name=name))
    services.problem_acknowledge(problem_id=Problem.objects.get(connection_name="billing-api").pk, actor="ops")
    healthy(watched)
    page.set_viewport_size({"width": 1280, "height": 800})
    admin_login(page, live_server.url, "root", "pw-root-123")
    card = page.locator(".synthorg-card", has=page.get_by_role("heading", name="Problems"))
    assert card.locator("tr", has_text="open").first.locator("td").inner_text().strip() == "2"
    assert card.locator("tr", has_text="not acknowledged").locator("td").inner_text().strip() == "1"
    assert card.locator("tr", has_text="resolved").locator("td").inner_text().strip() == "1"
    card_png = _target("console-problems-card")
    card.screenshot(path=str(card_png))
    assert card_png.stat().st_size < MAX_BYTES
