from __future__ import annotations

from typing import Any

import pytest

from synthorg.periodic import skip_when_disabled

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("path", [
    "/api/v1/connections", "/api/v1/webhooks/gh/push", "/api/v1/oauth/callback",
    "/api/v1/integrations/mcp/catalog", "/api/v1/providers",
])
def test_disabled_layer_answers_503_everywhere(operator_client: Any, settings: Any, path: str) -> None:
    settings.SYNTHORG_CONFIG_OVERRIDES = {"enabled": False}
    response = operator_client.post(path) if "webhooks" in path else operator_client.get(path)
    assert response.status_code == 503
    assert response.json()["code"] == "integrations_disabled"
    assert response["Retry-After"]


def test_audit_log_and_probes_stay_up_when_disabled(operator_client: Any, settings: Any) -> None:
    settings.SYNTHORG_CONFIG_OVERRIDES = {"enabled": False}
    assert operator_client.get("/api/v1/audit-events").status_code == 200
    assert operator_client.get("/healthz").status_code == 200


def test_periodic_work_is_skipped_when_disabled(settings: Any) -> None:
    calls = []

    @skip_when_disabled
    def sweep() -> str:
        calls.append(1)
        return "ran"

    assert sweep() == "ran"
    settings.SYNTHORG_CONFIG_OVERRIDES = {"enabled": False}
    assert sweep() == {"skipped": "integrations_disabled"}
    assert calls == [1]


def test_admin_shows_banner_when_disabled(client: Any, superuser: Any, settings: Any) -> None:
    client.force_login(superuser)
    assert "integrations layer is disabled" not in client.get("/admin/").content.decode()
    settings.SYNTHORG_CONFIG_OVERRIDES = {"enabled": False}
    assert "integrations layer is disabled" in client.get("/admin/").content.decode()
