from __future__ import annotations

from typing import Any

import pytest

from integrations import services
from synthorg import dashboard

pytestmark = pytest.mark.django_db


def test_admin_index_shows_cards_with_links(client: Any, superuser: Any) -> None:
    services.connection_create(name="gh-a", connection_type="github", credentials={"token": "t1"})
    services.connection_create(name="sl-a", connection_type="slack", credentials={"token": "t2"})
    client.force_login(superuser)
    html = client.get("/admin/").content.decode()
    assert "Connections" in html and "Tunnel" in html
    assert 'href="/admin/integrations/connection/?connection_type__exact=github">1</a>' in html
    assert 'href="/admin/integrations/connection/">2</a>' in html
    assert 'href="/admin/integrations/connection/?health_status__exact=unknown">2</a>' in html


def test_broken_card_does_not_break_the_console(client: Any, superuser: Any) -> None:
    def broken(request: Any) -> Any:
        raise RuntimeError("boom")

    dashboard.register("broken-test-card", broken)
    try:
        client.force_login(superuser)
        response = client.get("/admin/")
        assert response.status_code == 200
        assert "could not be computed" in response.content.decode()
    finally:
        dashboard._builders.pop("broken-test-card")
