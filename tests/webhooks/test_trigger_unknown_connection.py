from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.django_db


def test_rule_naming_a_missing_connection_is_422(operator_client: Any) -> None:
    response = operator_client.post("/api/v1/webhooks/triggers", {
        "name": "r1", "connection": "no-such-conn", "event_type": "push", "workflow": "log_event",
    }, format="json")
    assert response.status_code == 422
    assert response.json()["errors"] == {"connection": ["no connection with this name"]}


def test_verify_of_an_impossible_entry_id_is_404(operator_client: Any) -> None:
    response = operator_client.post("/api/v1/integrations/mcp/catalog/install/bad%00id/verify")
    assert response.status_code == 404
