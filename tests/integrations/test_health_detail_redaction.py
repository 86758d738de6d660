"""A stored health detail hides secret values but keeps the host an operator needs to see."""
from __future__ import annotations

import pytest

from integrations import health, services
from integrations.types.probing import UNHEALTHY, HealthResult

pytestmark = pytest.mark.django_db


def test_detail_keeps_url_and_hides_token(monkeypatch: pytest.MonkeyPatch) -> None:
    connection = services.connection_create(name="gh-detail", connection_type="github", credentials={
        "token": "ghp_detailCanary123", "api_url": "https://ghe.example.com/api/v3"})

    def echoing_probe(connection: object, context: object) -> HealthResult:
        return HealthResult(UNHEALTHY, "GET https://ghe.example.com/api/v3/user failed; peer echoed ghp_detailCanary123")

    monkeypatch.setattr(health, "probe_with_deadline", echoing_probe)
    outcome = health.connection_probe(connection=connection)
    assert outcome is not None
    connection.refresh_from_db()
    assert "https://ghe.example.com/api/v3/user" in connection.health_last_error
    assert "ghp_detailCanary123" not in connection.health_last_error
    assert "[redacted]" in connection.health_last_error
