"""The configuration loader: defaults, bounds, unknown keys, types, env overrides, and access."""
from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any

import pytest
from django.core import checks
from django.core.management import call_command

from synthorg import config as cfg
from synthorg.config import ConfigInvalid, get_config, load

DOCUMENTED_DEFAULTS = {
    "integrations.enabled": True,
    "integrations.connections.max_connections_per_type": 100,
    "integrations.secret_backend.backend_type": "encrypted_sqlite",
    "integrations.secret_backend.master_key_env": "SYNTHORG_MASTER_KEY",
    "integrations.oauth.state_expiry_seconds": 3600,
    "integrations.oauth.pkce_required": True,
    "integrations.oauth.auto_refresh_threshold_seconds": 300,
    "integrations.oauth.redirect_uri_base": None,
    "integrations.oauth.device_poll_interval_seconds": 5,
    "integrations.oauth.device_flow_timeout_seconds": 600,
    "integrations.webhooks.rate_limit_rpm": 100,
    "integrations.webhooks.replay_window_seconds": 300,
    "integrations.webhooks.max_payload_bytes": 1_000_000,
    "integrations.webhooks.verify_signatures": True,
    "integrations.webhooks.receipt_retention_days": 7,
    "integrations.health.check_interval_seconds": 300,
    "integrations.health.unhealthy_threshold": 3,
    "integrations.health.degraded_threshold": 1,
    "integrations.tunnel.enabled": False,
    "integrations.tunnel.auth_token_env": "NGROK_AUTHTOKEN",
    "integrations.mcp_catalog.enabled": True,
}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "synthorg.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def problems_of(path: Path | None = None, **kwargs: Any) -> list[str]:
    with pytest.raises(ConfigInvalid) as info:
        load(path, environ={}, **kwargs)
    return [str(p) for p in info.value.problems]


def value_at(config: cfg.Config, dotted: str) -> Any:
    node: Any = config
    for part in dotted.split("."):
        node = getattr(node, part)
    return node


@pytest.mark.parametrize(("key", "expected"), sorted(DOCUMENTED_DEFAULTS.items()))
def test_documented_key_without_file_has_seed_default(key: str, expected: Any) -> None:
    assert value_at(load(None, environ={}), key) == expected


def test_every_key_is_documented_in_readme() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    missing = [key for key, _ in cfg.keys_with_defaults() if f"`{key}`" not in readme]
    assert missing == []


def test_seed_example_file_loads_unchanged(tmp_path: Path) -> None:
    path = write(tmp_path, """
integrations:
  enabled: true
  connections:
    max_connections_per_type: 100
  secret_backend:
    backend_type: "encrypted_sqlite"
  oauth:
    state_expiry_seconds: 3600
    pkce_required: true
    auto_refresh_threshold_seconds: 300
  webhooks:
    rate_limit_rpm: 100
    replay_window_seconds: 300
    max_payload_bytes: 1000000
    verify_signatures: true
  health:
    check_interval_seconds: 300
    unhealthy_threshold: 3
  tunnel:
    enabled: false
  mcp_catalog:
    enabled: true
""")
    assert load(path, environ={}).integrations == cfg.IntegrationsConfig()


def _int_bounds() -> list[tuple[str, int, int]]:
    """Every integer key with its declared min and max, walked from the dataclasses."""
    found: list[tuple[str, int, int]] = []

    def walk(cls: type, prefix: list[str]) -> None:
        hints = typing.get_type_hints(cls)
        for fld in dataclasses.fields(cls):
            tp = hints[fld.name]
            if dataclasses.is_dataclass(tp):
                walk(tp, [*prefix, fld.name])  # type: ignore[arg-type]
            elif tp is int:
                found.append((".".join([*prefix, fld.name]), fld.metadata["min"], fld.metadata["max"]))

    walk(cfg.IntegrationsConfig, [])
    return found


def _nest(dotted: str, value: Any) -> dict[str, Any]:
    node: dict[str, Any] = {}
    parts = dotted.split(".")
    cursor = node
    for part in parts[:-1]:
        cursor = cursor.setdefault(part, {})
    cursor[parts[-1]] = value
    return node


@pytest.mark.parametrize(("key", "low", "high"), _int_bounds())
def test_integer_key_outside_bounds_is_reported_with_path(key: str, low: int, high: int) -> None:
    # The bounds themselves are accepted (degraded_threshold may not pass unhealthy_threshold).
    if key != "health.degraded_threshold":
        assert value_at(load(None, environ={}, overrides=_nest(key, low)).integrations, key) == low
        assert value_at(load(None, environ={}, overrides=_nest(key, high)).integrations, key) == high
    assert problems_of(overrides=_nest(key, low - 1)) == [f"integrations.{key}: must be at least {low}, got {low - 1}"]
    assert problems_of(overrides=_nest(key, high + 1))[0] == f"integrations.{key}: must be at most {high}, got {high + 1}"


def test_unknown_key_is_reported_with_full_path(tmp_path: Path) -> None:
    path = write(tmp_path, "integrations:\n  webhooks:\n    rate_limit_rmp: 5\n")
    [problem] = problems_of(path)
    assert problem.startswith("integrations.webhooks.rate_limit_rmp: unknown key (allowed here: ")
    assert "rate_limit_rpm" in problem


def test_unknown_top_level_key_is_reported(tmp_path: Path) -> None:
    assert problems_of(write(tmp_path, "integration:\n  enabled: true\n")) == [
        "integration: unknown top-level key (allowed: integrations, mcp)"
    ]


@pytest.mark.parametrize(("yaml_text", "expected"), [
    ("integrations:\n  enabled: 'yes'\n", "integrations.enabled: must be a boolean, got str"),
    ("integrations:\n  webhooks:\n    rate_limit_rpm: '100'\n", "integrations.webhooks.rate_limit_rpm: must be an integer, got str"),
    ("integrations:\n  webhooks:\n    rate_limit_rpm: true\n", "integrations.webhooks.rate_limit_rpm: must be an integer, got bool"),
    ("integrations:\n  oauth: 5\n", "integrations.oauth: must be a mapping"),
    ("integrations:\n  secret_backend:\n    backend_type: plaintext\n",
     "integrations.secret_backend.backend_type: must be one of encrypted_sqlite, env_var, secret_manager_vault, secret_manager_cloud_a, secret_manager_cloud_b"),
    ("integrations:\n  secret_backend:\n    master_key_env: 'NOT A NAME'\n",
     "integrations.secret_backend.master_key_env: must match ^[A-Za-z_][A-Za-z0-9_]*$"),
    ("integrations:\n  egress:\n    blocked_networks: ['10.0.0.0/33']\n",
     "integrations.egress.blocked_networks[0]: '10.0.0.0/33' is not an IP network (CIDR)"),
])
def test_wrong_type_or_value_is_reported_with_rule(tmp_path: Path, yaml_text: str, expected: str) -> None:
    assert problems_of(write(tmp_path, yaml_text)) == [expected]


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    path = write(tmp_path, "integrations:\n  enabled: 1\n  health:\n    unhealthy_threshold: 0\n  nope: 1\n")
    assert len(problems_of(path)) == 3


def test_degraded_threshold_above_unhealthy_is_reported() -> None:
    assert problems_of(overrides={"health": {"degraded_threshold": 4}}) == [
        "integrations.health.degraded_threshold: must not exceed integrations.health.unhealthy_threshold (3)"
    ]


def test_invalid_yaml_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "integrations:\n  enabled: [\n")
    [problem] = problems_of(path)
    assert problem.startswith(f"{path}: is not valid YAML at line")


def test_unreadable_file_is_reported(tmp_path: Path) -> None:
    [problem] = problems_of(tmp_path / "missing.yaml")
    assert "cannot read the file" in problem


def test_upstream_master_key_spelling_is_accepted(tmp_path: Path) -> None:
    path = write(tmp_path, "integrations:\n  secret_backend:\n    encrypted_sqlite:\n      master_key_env: TEAM_A_KEY\n")
    assert load(path, environ={}).integrations.secret_backend.effective_master_key_env == "TEAM_A_KEY"


def test_env_override_wins_over_file(tmp_path: Path) -> None:
    path = write(tmp_path, "integrations:\n  webhooks:\n    rate_limit_rpm: 10\n")
    config = load(path, environ={"SYNTHORG_CFG__WEBHOOKS__RATE_LIMIT_RPM": "42",
                                 "SYNTHORG_CFG__TUNNEL__ENABLED": "true"})
    assert config.integrations.webhooks.rate_limit_rpm == 42
    assert config.integrations.tunnel.enabled is True


def test_env_override_is_validated_like_the_file() -> None:
    with pytest.raises(ConfigInvalid) as info:
        load(None, environ={"SYNTHORG_CFG__HEALTH__UNHEALTHY_THRESHOLD": "0"})
    assert [str(p) for p in info.value.problems] == ["integrations.health.unhealthy_threshold: must be at least 1, got 0"]


def test_mcp_block_is_parsed_and_validated(tmp_path: Path) -> None:
    path = write(tmp_path, """
mcp:
  servers:
    - name: memory
      command: npx
      args: ["-y", "@modelcontextprotocol/server-memory"]
      env: {MEMORY_FILE_PATH: /tmp/m.json}
""")
    [server] = load(path, environ={}).mcp.servers
    assert (server.name, server.command, server.transport) == ("memory", "npx", "stdio")
    bad = write(tmp_path, "mcp:\n  servers:\n    - name: a\n      command: x\n      transport: carrier-pigeon\n    - name: a\n      command: y\n")
    assert problems_of(bad) == [
        "mcp.servers[0].transport: must be one of stdio, sse, streamable_http",
        "mcp.servers[1].name: duplicate server name 'a'",
    ]


def test_get_config_follows_settings_overrides(settings: Any) -> None:
    assert get_config().integrations.webhooks.rate_limit_rpm == 100
    settings.SYNTHORG_CONFIG_OVERRIDES = {"webhooks": {"rate_limit_rpm": 7}}
    assert get_config().integrations.webhooks.rate_limit_rpm == 7
    assert get_config().webhooks.rate_limit_rpm == 7  # the seed's spelling


def test_system_check_reports_each_problem(settings: Any, tmp_path: Path) -> None:
    settings.SYNTHORG_CONFIG_FILE = str(write(tmp_path, "integrations:\n  webhooks:\n    max_payload_bytes: 0\n"))
    errors = [m for m in checks.run_checks() if m.id == "synthorg.E001"]
    assert [e.msg for e in errors] == [
        "Invalid configuration: integrations.webhooks.max_payload_bytes must be at least 1, got 0"
    ]


def test_integrations_config_command_prints_effective_values(settings: Any, capsys: Any) -> None:
    settings.SYNTHORG_CONFIG_OVERRIDES = {"webhooks": {"rate_limit_rpm": 9}}
    call_command("integrations_config", "--format", "json")
    out = capsys.readouterr().out
    assert '"rate_limit_rpm": 9' in out
    assert "SYNTHORG_MASTER_KEY" in out
    import os
    assert os.environ["SYNTHORG_MASTER_KEY"] not in out
