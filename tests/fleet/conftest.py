"""Fleet tests start several real processes against the test database; they need PostgreSQL
(beat leadership is an advisory lock) and skip on SQLite unless CI requires the services."""
from __future__ import annotations

import pytest
from django.conf import settings

from tests.conftest import REQUIRE_SERVICES


@pytest.fixture
def postgres() -> None:
    if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        if REQUIRE_SERVICES:
            pytest.fail("the fleet tests need PostgreSQL (SYNTHORG_REQUIRE_SERVICES=1)")
        pytest.skip("needs PostgreSQL (DATABASE_URL)")
    if not settings.REDIS_URL:
        if REQUIRE_SERVICES:
            pytest.fail("the fleet tests need Redis (SYNTHORG_REQUIRE_SERVICES=1)")
        pytest.skip("needs Redis (REDIS_URL)")
