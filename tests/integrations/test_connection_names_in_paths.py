from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("name", ["bad%00name", "%E2%80%AE", "x" * 200, ".hidden"])
def test_impossible_names_in_paths_are_404_not_500(operator_client: Any, name: str) -> None:
    for method in ("get", "patch", "delete"):
        response = getattr(operator_client, method)(f"/api/v1/connections/{name}", format="json")
        assert response.status_code == 404, (method, response.status_code)
        assert response.json()["code"] in {"connection_not_found", "not_found"}
