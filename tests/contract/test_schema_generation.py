from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from django.core.management import call_command


@pytest.mark.django_db
def test_schema_generates_without_warnings_and_validates(tmp_path: Path) -> None:
    out = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))
    schema = yaml.safe_load(out.read_text())
    assert schema["openapi"].startswith("3.")
    assert "/api/v1/audit-events" in schema["paths"]


@pytest.mark.django_db
def test_schema_and_docs_are_served(client: object) -> None:
    assert client.get("/api/schema/").status_code == 200  # type: ignore[attr-defined]
    assert client.get("/api/docs/").status_code == 200  # type: ignore[attr-defined]


@pytest.mark.django_db
def test_schema_describes_the_unauthenticated_webhook_receiver(client: object) -> None:
    schema = yaml.safe_load(client.get("/api/schema/").content)  # type: ignore[attr-defined]
    operation = schema["paths"]["/api/v1/webhooks/{connection_name}/{event_type}"]["post"]
    assert operation["security"] == []
    assert {"202", "401", "413", "429"} <= set(operation["responses"])
