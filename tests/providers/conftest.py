from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from integrations import services as connection_services
from providers import services

CANARY = "canary-provider-secret-7f3a9c"
CONNECTION_CANARY = "canary-connection-token-51bd02"


@pytest.fixture
def make_connection(db: Any) -> Callable[..., Any]:
    def make(name: str = "llm-gateway", connection_type: str = "generic_http", **credentials: Any) -> Any:
        if not credentials:
            credentials = {"base_url": "https://llm.example.test", "token": CONNECTION_CANARY}
        return connection_services.connection_create(name=name, connection_type=connection_type,
                                                     credentials=credentials)
    return make


@pytest.fixture
def make_provider(db: Any) -> Callable[..., Any]:
    def make(name: str = "main-llm", driver: str = "openai", **kwargs: Any) -> Any:
        kwargs.setdefault("model", "gpt-4o")
        return services.provider_create(name=name, driver=driver, **kwargs)
    return make
