"""Connection.expires_at is set through the API, the admin and read back (issue 16)."""
from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse

from integrations.models import Connection

pytestmark = pytest.mark.django_db


def test_expiry_through_the_api(operator_client: Any) -> None:
    created = operator_client.post("/api/v1/connections", {
        "name": "static", "connection_type": "generic_http", "credentials": {"base_url": "http://127.0.0.1:9/"},
        "expires_at": "2027-01-31T12:00:00Z"}, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["expires_at"] == "2027-01-31T12:00:00Z"
    patched = operator_client.patch("/api/v1/connections/static", {"expires_at": "2027-03-01T00:00:00Z"},
                                    format="json")
    assert patched.status_code == 200 and patched.json()["expires_at"] == "2027-03-01T00:00:00Z"
    cleared = operator_client.patch("/api/v1/connections/static", {"expires_at": None}, format="json")
    assert cleared.json()["expires_at"] is None and Connection.objects.get().expires_at is None
    bad = operator_client.patch("/api/v1/connections/static", {"expires_at": "soon"}, format="json")
    assert bad.status_code == 400


def test_expiry_through_the_admin(root_console: Any) -> None:
    from integrations import services

    connection = services.connection_create(name="static", connection_type="generic_http",
                                            credentials={"base_url": "http://127.0.0.1:9/"})
    url = reverse("admin:integrations_connection_change", args=[connection.pk])
    page = root_console.get(url).content.decode()
    assert 'name="expires_at"' in page
