"""The canary tests of the connections issue (tests/integrations/test_connections_canary.py),
run once more per real secret manager: the same tests, collected here, with every configuration
they set laid over the backend's block (this module's `integrations_config`)."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from integrations.models import SecretRecord
from integrations.secrets import managed
from tests.integrations.test_connections_canary import (  # noqa: F401 - collected here once per backend
    test_canary_never_leaks_outside_the_reveal,
    test_change_permission_alone_never_sends_the_canary_to_a_listener,
)
from tests.secret_backends.conftest import BACKENDS, backend_overrides


@pytest.fixture(params=BACKENDS)
def backend_block(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    name: str = request.param
    if name == managed.VAULT:
        bao = request.getfixturevalue("bao")
        monkeypatch.setenv("VAULT_TOKEN", bao.root_token)
        return backend_overrides(name, bao=bao, prefix="canary-" + bao.root_token[-6:] + str(id(request)))
    moto = request.getfixturevalue("moto")
    return backend_overrides(name, moto=moto, prefix=f"canary-{id(request)}")


@pytest.fixture
def integrations_config(settings: Any, backend_block: dict[str, Any], db: None) -> Iterator[Any]:
    def apply(overrides: dict[str, Any]) -> None:
        settings.SYNTHORG_CONFIG_OVERRIDES = {
            **overrides, "secret_backend": {**backend_block, **overrides.get("secret_backend", {})}}

    apply({})
    managed.managers_reset()
    yield apply
    # The tests did run against the manager: every stored secret is a reference.
    assert SecretRecord.objects.exists()
    assert all(managed.is_ref(stored) for stored in SecretRecord.objects.values_list("ciphertext", flat=True))
    managed.managers_reset()
