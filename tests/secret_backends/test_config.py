"""The `vault:` and `aws:` blocks are validated like every other key: bounds, and the full path."""
from __future__ import annotations

from typing import Any

import pytest

from synthorg.config import ConfigInvalid, load


def problems(block: dict[str, Any]) -> str:
    with pytest.raises(ConfigInvalid) as caught:
        load(None, environ={}, overrides={"secret_backend": block})
    return str(caught.value)


def test_defaults_are_the_issue_s() -> None:
    backend = load(None, environ={}).integrations.secret_backend
    assert (backend.vault.mount, backend.vault.path_prefix, backend.vault.auth, backend.vault.token_env,
            backend.vault.timeout_seconds, backend.vault.cache_ttl_seconds) == ("secret", "synthorg", "token",
                                                                                "VAULT_TOKEN", 5, 60)
    assert (backend.aws.name_prefix, backend.aws.recovery_window_days, backend.aws.kms_key_id,
            backend.aws.endpoint_url) == ("synthorg/", 7, "", "")


@pytest.mark.parametrize(("block", "message"), [
    ({"vault": {"url": "ftp://vault"}}, "integrations.secret_backend.vault.url: must match"),
    ({"vault": {"url": "https://user@vault"}}, "integrations.secret_backend.vault.url: must match"),
    ({"vault": {"auth": "ldap"}}, "integrations.secret_backend.vault.auth: must be one of token, approle"),
    ({"vault": {"token_env": "not a name"}}, "integrations.secret_backend.vault.token_env: must match"),
    ({"vault": {"timeout_seconds": 0}}, "integrations.secret_backend.vault.timeout_seconds: must be at least 1"),
    ({"vault": {"cache_ttl_seconds": 86_401}}, "integrations.secret_backend.vault.cache_ttl_seconds: must be at most"),
    ({"vault": {"path_prefix": "/abs"}}, "integrations.secret_backend.vault.path_prefix: must match"),
    ({"vault": {"nope": 1}}, "integrations.secret_backend.vault.nope"),
    ({"aws": {"region": "Europe"}}, "integrations.secret_backend.aws.region: must match"),
    ({"aws": {"recovery_window_days": 31}}, "integrations.secret_backend.aws.recovery_window_days: must be at most 30"),
    ({"aws": {"recovery_window_days": 3}}, "must be 0 (delete at once) or between 7 and 30"),
    ({"aws": {"endpoint_url": "localhost:4566"}}, "integrations.secret_backend.aws.endpoint_url: must match"),
    ({"aws": {"timeout_seconds": "5"}}, "integrations.secret_backend.aws.timeout_seconds: must be an integer"),
])
def test_bad_values_name_the_full_key(block: dict[str, Any], message: str) -> None:
    assert message in problems(block)
