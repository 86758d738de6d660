"""The `integrations:` YAML block (and the user-owned `mcp:` block) as one typed object.

Code reads this configuration only through ``get_config()``. The file is found through
``settings.SYNTHORG_CONFIG_FILE`` (env ``SYNTHORG_CONFIG``, else ``synthorg.yaml`` beside
``manage.py`` when present), then environment overrides ``SYNTHORG_CFG__<SECTION>__<KEY>``
(values parsed as YAML scalars) and ``settings.SYNTHORG_CONFIG_OVERRIDES`` (a dict, for tests)
are laid over it. Every key has a default and bounds; a problem is reported with the key's
full path and the rule it broke, by the system check ``synthorg.E001`` at startup.

Later capabilities add their keys to the dataclasses below, each with a README row.
"""
from __future__ import annotations

import dataclasses
import functools
import ipaddress
import os
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ENV_OVERRIDE_PREFIX = "SYNTHORG_CFG__"
ENV_VAR_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"


def _spec(default: Any, *, min: int | None = None, max: int | None = None,
          choices: tuple[str, ...] | None = None, pattern: str | None = None,
          doc: str = "") -> Any:
    """A field with its default and the rules a value must keep."""
    rules = {"min": min, "max": max, "choices": choices, "pattern": pattern, "doc": doc}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=rules)
    return field(default=default, metadata=rules)


@dataclass(frozen=True)
class ConnectionsConfig:
    max_connections_per_type: int = _spec(100, min=1, max=100_000)
    # Per-user throttle of the scoped secret reveal (0 = unlimited).
    reveal_rate_per_minute: int = _spec(10, min=0, max=10_000)


SECRET_BACKENDS = (
    "encrypted_sqlite",
    "env_var",
    "secret_manager_vault",
    "secret_manager_cloud_a",
    "secret_manager_cloud_b",
)


@dataclass(frozen=True)
class EncryptedSqliteConfig:
    master_key_env: str | None = _spec(None, pattern=ENV_VAR_NAME)


@dataclass(frozen=True)
class VaultConfig:
    """`secret_manager_vault`: HashiCorp Vault / OpenBao, KV version 2 (issue 14)."""

    url: str = _spec("https://127.0.0.1:8200", pattern=r"^https?://[^\s/?#@\\]+(/[^\s?#@\\]*)?$")
    mount: str = _spec("secret", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
    # Secrets live under <mount>/data/<path_prefix>/<kind>/<owner id>.
    path_prefix: str = _spec("synthorg",
                             pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}(/[A-Za-z0-9][A-Za-z0-9._-]{0,63}){0,7}$")
    namespace: str = _spec("", pattern=r"^([A-Za-z0-9][A-Za-z0-9._/-]{0,127})?$")
    auth: str = _spec("token", choices=("token", "approle"))
    # Names of environment variables (or <NAME>_FILE), never the values.
    token_env: str = _spec("VAULT_TOKEN", pattern=ENV_VAR_NAME)
    role_id_env: str = _spec("VAULT_ROLE_ID", pattern=ENV_VAR_NAME)
    secret_id_env: str = _spec("VAULT_SECRET_ID", pattern=ENV_VAR_NAME)
    # A CA bundle file for the server's certificate; TLS verification is never turned off.
    ca_bundle: str = _spec("")
    timeout_seconds: int = _spec(5, min=1, max=120)
    cache_ttl_seconds: int = _spec(60, min=0, max=86_400)


@dataclass(frozen=True)
class AwsSecretsConfig:
    """`secret_manager_cloud_a`: AWS Secrets Manager; credentials from boto3's standard chain."""

    region: str = _spec("eu-west-1", pattern=r"^[a-z]{2}(-[a-z]+)+-\d{1,2}$")
    name_prefix: str = _spec("synthorg/", pattern=r"^[A-Za-z0-9/_+=.@-]{0,256}$")
    kms_key_id: str = _spec("", pattern=r"^[A-Za-z0-9:/_+=.@-]{0,2048}$")
    # For LocalStack / moto / VPC endpoints; empty = AWS's own endpoint for the region.
    endpoint_url: str = _spec("", pattern=r"^(https?://[^\s?#@\\]+)?$")
    # 0 deletes at once (ForceDeleteWithoutRecovery); AWS accepts 7-30 otherwise (cross-checked).
    recovery_window_days: int = _spec(7, min=0, max=30)
    timeout_seconds: int = _spec(5, min=1, max=120)
    cache_ttl_seconds: int = _spec(60, min=0, max=86_400)


@dataclass(frozen=True)
class SecretBackendConfig:
    backend_type: str = _spec("encrypted_sqlite", choices=SECRET_BACKENDS)
    master_key_env: str = _spec("SYNTHORG_MASTER_KEY", pattern=ENV_VAR_NAME)
    # Comma-separated older keys still accepted for decryption during a rotation.
    previous_master_keys_env: str = _spec("SYNTHORG_PREVIOUS_MASTER_KEYS", pattern=ENV_VAR_NAME)
    # Upstream spelling: `secret_backend.encrypted_sqlite.master_key_env`.
    encrypted_sqlite: EncryptedSqliteConfig = field(default_factory=EncryptedSqliteConfig)
    vault: VaultConfig = field(default_factory=VaultConfig)
    aws: AwsSecretsConfig = field(default_factory=AwsSecretsConfig)

    @property
    def effective_master_key_env(self) -> str:
        return self.encrypted_sqlite.master_key_env or self.master_key_env


@dataclass(frozen=True)
class OAuthConfig:
    state_expiry_seconds: int = _spec(3600, min=60, max=86_400)
    pkce_required: bool = _spec(True)
    auto_refresh_threshold_seconds: int = _spec(300, min=0, max=86_400)
    redirect_uri_base: str | None = _spec(None, pattern=r"^https?://[^\s?#]+$")
    device_poll_interval_seconds: int = _spec(5, min=1, max=60)
    device_flow_timeout_seconds: int = _spec(600, min=30, max=3600)


@dataclass(frozen=True)
class WebhooksConfig:
    rate_limit_rpm: int = _spec(100, min=0, max=1_000_000)
    replay_window_seconds: int = _spec(300, min=1, max=86_400)
    max_payload_bytes: int = _spec(1_000_000, min=1, max=100_000_000)
    verify_signatures: bool = _spec(True)
    receipt_retention_days: int = _spec(7, min=0, max=3650)
    # Requests per minute from one source address, checked before the body is read (0 = off).
    flood_rpm_per_ip: int = _spec(600, min=0, max=1_000_000)
    # The outbox sweep: how often it runs, and after how long a claimed publication (or a
    # workflow run) counts as stuck and is enqueued again. Keep it below the broker's
    # visibility timeout, so recovery never waits on the broker.
    publish_sweep_interval_seconds: int = _spec(30, min=1, max=3600)
    publish_stuck_seconds: int = _spec(120, min=1, max=3000)
    workflow_max_attempts: int = _spec(5, min=1, max=50)
    # Rejected or duplicate requests kept as samples per connection, reason and minute.
    rejection_samples_per_minute: int = _spec(5, min=0, max=1000)


@dataclass(frozen=True)
class HealthConfig:
    check_interval_seconds: int = _spec(300, min=10, max=86_400)
    unhealthy_threshold: int = _spec(3, min=1, max=100)
    degraded_threshold: int = _spec(1, min=1, max=100)
    timeout_seconds: int = _spec(10, min=1, max=120)
    history_length: int = _spec(50, min=1, max=1000)
    # How often beat runs the sweep that claims due connections (each keeps its own interval).
    sweep_interval_seconds: int = _spec(30, min=1, max=3600)
    # Connections per probe task, and concurrent probes (threads) inside one task.
    probe_chunk_size: int = _spec(50, min=1, max=1000)
    probe_threads: int = _spec(50, min=1, max=500)
    # The on-demand check returns a result at most this old without probing again.
    fresh_result_seconds: int = _spec(30, min=0, max=3600)
    # GitHub Enterprise hosts (Server, or a Cloud tenant's api.<tenant>.ghe.com) the github
    # token may be sent to besides api.github.com; exact names, checked on the host connected to.
    github_allowed_hosts: list[str] = _spec([])


@dataclass(frozen=True)
class EgressConfig:
    """Where outbound calls (probes, OAuth token endpoints, forwards) may connect.

    Checked on the address actually connected to, after DNS. Cloud metadata is refused
    by default; private and loopback ranges are allowed unless the operator refuses them
    (a self-hosted service often talks to internal hosts).
    """

    block_private: bool = _spec(False)
    block_loopback: bool = _spec(False)
    blocked_networks: list[str] = _spec(["169.254.0.0/16", "fd00:ec2::254/128"])
    # Hosts always allowed even when their address falls in a refused range.
    allowed_hosts: list[str] = _spec([])


@dataclass(frozen=True)
class RateLimitConfig:
    # "auto": Redis when REDIS_URL is set, else the database.
    backend: str = _spec("auto", choices=("auto", "redis", "database"))
    max_wait_seconds: int = _spec(10, min=0, max=300)
    lease_seconds: int = _spec(60, min=1, max=3600)


@dataclass(frozen=True)
class TunnelConfig:
    enabled: bool = _spec(False)
    auth_token_env: str = _spec("NGROK_AUTHTOKEN", pattern=ENV_VAR_NAME)
    # The local port the tunnel forwards to (the web server's).
    local_port: int = _spec(8000, min=1, max=65535)
    # The agent executable; empty = `ngrok` on PATH. pyngrok is never allowed to download one.
    ngrok_path: str = _spec("")
    startup_timeout_seconds: int = _spec(15, min=1, max=120)


@dataclass(frozen=True)
class MCPCatalogConfig:
    enabled: bool = _spec(True)
    # Every path chosen at install time (Filesystem's directories, Memory's storage_file, a sqlite
    # connection's file) must lie under one of these after symlinks are resolved, and never in the
    # service's own files (synthorg.path_confinement). Relative entries are under the var
    # directory; [] allows no path at all.
    allowed_roots: list[str] = _spec(["mcp"])
    # Bound on one verify (launch, initialize, list tools).
    verify_timeout_seconds: int = _spec(30, min=1, max=600)
    # When set, npm entries launch from this pre-installed node_modules (offline) instead of npx.
    node_modules_dir: str = _spec("")
    # Browser entries (Puppeteer) use this Chromium; they never download one.
    chromium_path: str = _spec("/usr/bin/chromium")


@dataclass(frozen=True)
class SchedulerConfig:
    # The service heartbeat: proof that beat and a worker are alive (shown by /readyz?verbose).
    heartbeat_interval_seconds: int = _spec(60, min=1, max=3600)


@dataclass(frozen=True)
class BeatConfig:
    # A standby beat takes the schedule over within this many seconds of the leader's death or
    # stop (synthorg/beat.py): it asks for the leader lock every third of it, and the database
    # drops a vanished leader's session within two thirds of it (TCP keepalives).
    takeover_seconds: int = _spec(30, min=3, max=600)


@dataclass(frozen=True)
class MetricsConfig:
    # GET /metrics answers clients in these networks (CIDRs; the client address as
    # synthorg/client_address.py finds it), or a request with `Authorization: Bearer <token>`
    # where the token is the value of the environment variable named by token_env.
    allowed_networks: list[str] = _spec(["127.0.0.0/8", "::1/128"])
    token_env: str = _spec("SYNTHORG_METRICS_TOKEN", pattern=ENV_VAR_NAME)
    # Connection names as label values (one series per connection): off by default.
    per_connection: bool = _spec(False)


@dataclass(frozen=True)
class IntegrationsConfig:
    enabled: bool = _spec(True)
    # Reverse proxies (CIDRs) whose X-Forwarded-For / X-Forwarded-Host are believed; empty =
    # none, the client is REMOTE_ADDR (synthorg/client_address.py).
    trusted_proxies: list[str] = _spec([])
    connections: ConnectionsConfig = field(default_factory=ConnectionsConfig)
    secret_backend: SecretBackendConfig = field(default_factory=SecretBackendConfig)
    oauth: OAuthConfig = field(default_factory=OAuthConfig)
    webhooks: WebhooksConfig = field(default_factory=WebhooksConfig)
    health: HealthConfig = field(default_factory=HealthConfig)
    tunnel: TunnelConfig = field(default_factory=TunnelConfig)
    mcp_catalog: MCPCatalogConfig = field(default_factory=MCPCatalogConfig)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    beat: BeatConfig = field(default_factory=BeatConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    egress: EgressConfig = field(default_factory=EgressConfig)
    ratelimit: RateLimitConfig = field(default_factory=RateLimitConfig)


@dataclass(frozen=True)
class MCPServerConfig:
    name: str = _spec("", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
    command: str = _spec("", pattern=r"^\S.*$")
    args: list[str] = _spec([])
    env: dict[str, str] = _spec({})
    transport: str = _spec("stdio", choices=("stdio", "sse", "streamable_http"))


@dataclass(frozen=True)
class MCPConfig:
    servers: list[MCPServerConfig] = _spec([])


@dataclass(frozen=True)
class Config:
    """The whole file: `integrations:` plus the user-owned `mcp:` block."""

    integrations: IntegrationsConfig = field(default_factory=IntegrationsConfig)
    mcp: MCPConfig = field(default_factory=MCPConfig)
    source: str = "defaults"

    def __getattr__(self, name: str) -> Any:
        # `get_config().webhooks` reads as the seed documents it.
        if name.startswith("__") or name in {"integrations", "mcp", "source"}:
            raise AttributeError(name)
        return getattr(self.integrations, name)


@dataclass(frozen=True)
class Problem:
    path: str
    rule: str

    def __str__(self) -> str:
        return f"{self.path}: {self.rule}"


class ConfigInvalid(Exception):
    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("; ".join(str(p) for p in problems))


# --- building typed values from plain data --------------------------------------------

def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin in (types.UnionType, typing.Union):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if tp is type(None):
        return "null"
    if origin is list:
        return "a list"
    if origin is dict:
        return "a mapping"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    return {bool: "a boolean", int: "an integer", str: "a string"}.get(tp, str(tp))


def _build(cls: type, data: Any, path: str, problems: list[Problem]) -> Any:
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        problems.append(Problem(path, "must be a mapping"))
        return cls()
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    values: dict[str, Any] = {}
    for key, raw in data.items():
        key_path = f"{path}.{key}" if path else str(key)
        if key not in fields or key == "source":
            allowed = ", ".join(sorted(k for k in fields if k != "source"))
            problems.append(Problem(key_path, f"unknown key (allowed here: {allowed})"))
            continue
        values[key] = _value(hints[key], fields[key], raw, key_path, problems)
    try:
        return cls(**{k: v for k, v in values.items() if v is not _INVALID})
    except TypeError as exc:  # pragma: no cover - guarded by the checks above
        problems.append(Problem(path, str(exc)))
        return cls()


_INVALID = object()


def _value(tp: Any, fld: dataclasses.Field[Any], raw: Any, path: str,
           problems: list[Problem]) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    rules = fld.metadata
    if dataclasses.is_dataclass(tp):
        return _build(tp, raw, path, problems)  # type: ignore[arg-type]
    if origin in (types.UnionType, typing.Union) and type(None) in args:
        if raw is None:
            return None
        tp = next(a for a in args if a is not type(None))
        origin = typing.get_origin(tp)
        args = typing.get_args(tp)
    if origin is list:
        if not isinstance(raw, list):
            problems.append(Problem(path, "must be a list"))
            return _INVALID
        (item_tp,) = args
        items = []
        for index, item in enumerate(raw):
            item_path = f"{path}[{index}]"
            if dataclasses.is_dataclass(item_tp):
                items.append(_build(item_tp, item, item_path, problems))  # type: ignore[arg-type]
            elif isinstance(item, item_tp) and not isinstance(item, bool):
                items.append(item)
            else:
                problems.append(Problem(item_path, f"must be {_type_name(item_tp)}"))
        return items
    if origin is dict:
        if not isinstance(raw, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in raw.items()
        ):
            problems.append(Problem(path, "must be a mapping of strings to strings"))
            return _INVALID
        return dict(raw)
    # Scalars: strict, no coercion (True is not an integer, "5" is not an integer).
    if tp is bool:
        ok = isinstance(raw, bool)
    elif tp is int:
        ok = isinstance(raw, int) and not isinstance(raw, bool)
    else:
        ok = isinstance(raw, tp)
    if not ok:
        problems.append(Problem(path, f"must be {_type_name(tp)}, got {type(raw).__name__}"))
        return _INVALID
    if rules.get("min") is not None and raw < rules["min"]:
        problems.append(Problem(path, f"must be at least {rules['min']}, got {raw}"))
        return _INVALID
    if rules.get("max") is not None and raw > rules["max"]:
        problems.append(Problem(path, f"must be at most {rules['max']}, got {raw}"))
        return _INVALID
    if rules.get("choices") and raw not in rules["choices"]:
        problems.append(Problem(path, f"must be one of {', '.join(rules['choices'])}"))
        return _INVALID
    if rules.get("pattern") and not re.match(rules["pattern"], raw):
        problems.append(Problem(path, f"must match {rules['pattern']}"))
        return _INVALID
    return raw


def _cross_field_rules(config: Config, problems: list[Problem]) -> None:
    health = config.integrations.health
    if health.degraded_threshold > health.unhealthy_threshold:
        problems.append(Problem(
            "integrations.health.degraded_threshold",
            f"must not exceed integrations.health.unhealthy_threshold ({health.unhealthy_threshold})",
        ))
    egress = config.integrations.egress
    for index, network in enumerate(egress.blocked_networks):
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError:
            problems.append(Problem(f"integrations.egress.blocked_networks[{index}]",
                                    f"{network!r} is not an IP network (CIDR)"))
    for index, network in enumerate(config.integrations.trusted_proxies):
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError:
            problems.append(Problem(f"integrations.trusted_proxies[{index}]",
                                    f"{network!r} is not an IP network (CIDR)"))
    for index, network in enumerate(config.integrations.metrics.allowed_networks):
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError:
            problems.append(Problem(f"integrations.metrics.allowed_networks[{index}]",
                                    f"{network!r} is not an IP network (CIDR)"))
    window = config.integrations.secret_backend.aws.recovery_window_days
    if 0 < window < 7:
        problems.append(Problem("integrations.secret_backend.aws.recovery_window_days",
                                f"must be 0 (delete at once) or between 7 and 30 (AWS's bounds), got {window}"))
    names = [s.name for s in config.mcp.servers]
    for index, server in enumerate(config.mcp.servers):
        if not server.name:
            problems.append(Problem(f"mcp.servers[{index}].name", "is required"))
        if not server.command:
            problems.append(Problem(f"mcp.servers[{index}].command", "is required"))
        if server.name and names.count(server.name) > 1 and names.index(server.name) != index:
            problems.append(Problem(f"mcp.servers[{index}].name", f"duplicate server name {server.name!r}"))


def _deep_merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _deep_merge(dict(merged[key]), value)
        else:
            merged[key] = value
    return merged


def env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    """``SYNTHORG_CFG__WEBHOOKS__RATE_LIMIT_RPM=50`` → ``{"webhooks": {"rate_limit_rpm": 50}}``."""
    result: dict[str, Any] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_OVERRIDE_PREFIX):
            continue
        parts = [p.lower() for p in name[len(ENV_OVERRIDE_PREFIX):].split("__") if p]
        if not parts:
            continue
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            value = raw
        node = result
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return result


def load(path: str | os.PathLike[str] | None, *, environ: Mapping[str, str] | None = None,
         overrides: Mapping[str, Any] | None = None) -> Config:
    """Read, merge and validate. Raises ``ConfigInvalid`` listing every problem."""
    problems: list[Problem] = []
    document: dict[str, Any] = {}
    source = "defaults"
    if path:
        source = str(path)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigInvalid([Problem(str(path), f"cannot read the file ({exc.strerror})")]) from None
        try:
            loaded = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            raise ConfigInvalid([Problem(str(path), f"is not valid YAML{where}")]) from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, Mapping):
            raise ConfigInvalid([Problem(str(path), "must be a mapping with an `integrations:` key")])
        document = dict(loaded)
    integrations = document.get("integrations") or {}
    if not isinstance(integrations, Mapping):
        problems.append(Problem("integrations", "must be a mapping"))
        integrations = {}
    integrations = _deep_merge(dict(integrations), env_overrides(environ if environ is not None else os.environ))
    if overrides:
        integrations = _deep_merge(integrations, overrides)
    top = {"integrations": integrations, "mcp": document.get("mcp")}
    for key in document:
        if key not in top:
            problems.append(Problem(str(key), "unknown top-level key (allowed: integrations, mcp)"))
    config = _build(Config, top, "", problems)
    config = dataclasses.replace(config, source=source)
    _cross_field_rules(config, problems)
    if problems:
        raise ConfigInvalid(problems)
    return config


def as_dict(config: Config) -> dict[str, Any]:
    """The effective configuration as plain data (it holds no secret: only env var names)."""
    data = dataclasses.asdict(config)
    data.pop("source", None)
    return data


def keys_with_defaults() -> list[tuple[str, Any]]:
    """Every `integrations.*` key and its default, for the README test and the command."""
    rows: list[tuple[str, Any]] = []

    def walk(cls: type, prefix: str) -> None:
        for fld in dataclasses.fields(cls):
            tp = typing.get_type_hints(cls)[fld.name]
            if dataclasses.is_dataclass(tp):
                walk(tp, f"{prefix}.{fld.name}")  # type: ignore[arg-type]
            else:
                default = fld.default if fld.default is not dataclasses.MISSING else fld.default_factory()  # type: ignore[misc]
                rows.append((f"{prefix}.{fld.name}", default))

    walk(IntegrationsConfig, "integrations")
    return rows


# --- access ------------------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def _cached() -> Config:
    from django.conf import settings

    return load(
        getattr(settings, "SYNTHORG_CONFIG_FILE", None),
        overrides=getattr(settings, "SYNTHORG_CONFIG_OVERRIDES", None) or None,
    )


def get_config() -> Config:
    """The validated configuration; raises ``ConfigInvalid`` when the file is broken.

    Processes never get this far with a broken file: the system check stops them first.
    """
    return _cached()


def reset_config_cache(**_: Any) -> None:
    _cached.cache_clear()


def _on_setting_changed(*, setting: str, **_: Any) -> None:
    if setting in {"SYNTHORG_CONFIG_FILE", "SYNTHORG_CONFIG_OVERRIDES"}:
        reset_config_cache()


def connect_signals() -> None:
    from django.core.signals import setting_changed

    setting_changed.connect(_on_setting_changed, dispatch_uid="synthorg.config.reset")
