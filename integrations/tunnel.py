"""The ngrok tunnel: desired state in the database, one owner process running the agent.

Web processes never run the agent. `tunnel_start` / `tunnel_stop` record the desired
state on the single `TunnelState` row; the owner (`manage.py tunnel`, started by
`make run`) reconciles: it starts or stops the agent through pyngrok and writes the
status and public URL back. Every web process therefore reports and controls the same
tunnel, and `tunnel_status` never starts anything.

pyngrok downloads the agent when its path does not exist; this service never lets it
(the path is checked first, and a missing agent is an error naming the setting).
"""
from __future__ import annotations

import logging
import os
import shutil
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol

from django.conf import settings
from django.db import DatabaseError, transaction
from django.db.models import Q
from django.http import HttpRequest
from django.utils import timezone

from integrations.models import TunnelState
from synthorg.audit import audit_record
from synthorg.config import TunnelConfig, get_config
from synthorg.errors import Conflict, ServiceUnavailable

logger = logging.getLogger(__name__)

STATE_PK = 1
# An owner that has not written a heartbeat for this long is presumed dead: its tunnel is
# not reported as running, and another owner may take over.
OWNER_STALE_SECONDS = 30
_CACHE_SECONDS = 1.0


class TunnelDisabled(Conflict):
    code = "tunnel_disabled"
    default_detail = "The tunnel is turned off; set integrations.tunnel.enabled: true to allow it."


class TunnelUnavailable(ServiceUnavailable):
    code = "tunnel_unavailable"


class AgentError(Exception):
    """The agent could not be started or stopped; the message holds no secret."""


def auth_token(config: TunnelConfig | None = None) -> str | None:
    config = config or get_config().integrations.tunnel
    return os.environ.get(config.auth_token_env) or None


def agent_path(config: TunnelConfig | None = None) -> str | None:
    """The agent executable, or None when it is not installed (never downloaded)."""
    config = config or get_config().integrations.tunnel
    if config.ngrok_path:
        return config.ngrok_path if os.path.isfile(config.ngrok_path) and os.access(config.ngrok_path, os.X_OK) \
            else None
    return shutil.which("ngrok")


def _preflight(config: TunnelConfig) -> None:
    """Everything checkable before anything starts: switch, token, agent."""
    if not config.enabled:
        raise TunnelDisabled()
    if not auth_token(config):
        raise TunnelUnavailable(f"No ngrok auth token: set the environment variable {config.auth_token_env} "
                                "(integrations.tunnel.auth_token_env) for the service.",
                                code="tunnel_auth_token_missing")
    if agent_path(config) is None:
        where = config.ngrok_path or "`ngrok` on PATH"
        raise TunnelUnavailable(f"The ngrok agent is not installed ({where}); install it and set "
                                "integrations.tunnel.ngrok_path. It is never downloaded automatically.",
                                code="ngrok_not_installed")


# --- state --------------------------------------------------------------------------------

def _read_state() -> TunnelState:
    return TunnelState.objects.filter(pk=STATE_PK).first() or TunnelState(pk=STATE_PK)


def _owner_alive(state: TunnelState) -> bool:
    return bool(state.owner_heartbeat_at
                and timezone.now() - state.owner_heartbeat_at < timedelta(seconds=OWNER_STALE_SECONDS))


def _is_up(state: TunnelState) -> bool:
    return state.status == TunnelState.Status.RUNNING and bool(state.public_url) and _owner_alive(state)


_cache: dict[str, Any] = {}
_cache_lock = threading.Lock()


def clear_cache() -> None:
    with _cache_lock:
        _cache.clear()


def tunnel_public_url() -> str | None:
    """The running tunnel's public URL, or None. Registered as a `synthorg.public_url` provider.

    Asked on every webhook URL built, so it answers from a one-second process cache, and
    without any query at all while the tunnel is switched off in the configuration.
    """
    if not get_config().integrations.tunnel.enabled:
        return None
    now = time.monotonic()
    with _cache_lock:
        if _cache.get("expires", 0.0) > now:
            return _cache.get("url")
    try:
        state = _read_state()
    except (DatabaseError, RuntimeError):
        # No database here (before migrate, or a test without database access): no tunnel.
        return None
    url = state.public_url if _is_up(state) else None
    with _cache_lock:
        _cache.update(url=url, expires=now + _CACHE_SECONDS)
    return url


@dataclass
class TunnelStatus:
    enabled: bool
    running: bool
    public_url: str | None
    has_auth_token: bool
    webhook_urls: dict[str, str] = field(default_factory=dict)
    status: str = TunnelState.Status.STOPPED
    desired: str = TunnelState.Desired.STOPPED
    error: str = ""
    owner: str = ""
    owner_heartbeat_at: Any = None


def tunnel_status(request: HttpRequest | None = None) -> TunnelStatus:
    """Read-only: never starts the agent, never writes."""
    from integrations.selectors import connection_list

    config = get_config().integrations.tunnel
    state = _read_state()
    running = config.enabled and _is_up(state)
    error = state.error
    if state.status == TunnelState.Status.RUNNING and not _owner_alive(state):
        error = error or "The tunnel owner process (manage.py tunnel) has not reported for a while."
    urls: dict[str, str] = {}
    if running:
        base = state.public_url.rstrip("/")
        # The shape of synthorg.public_url.webhook_url, from the row already read.
        urls = {name: f"{base}/api/v1/webhooks/{name}/auto"
                for name in connection_list().values_list("name", flat=True)}
    return TunnelStatus(enabled=config.enabled, running=running, public_url=state.public_url if running else None,
                        has_auth_token=auth_token(config) is not None, webhook_urls=urls, status=state.status,
                        desired=state.desired, error=error, owner=state.owner,
                        owner_heartbeat_at=state.owner_heartbeat_at)


def tunnel_start(*, actor: Any = None, request: HttpRequest | None = None) -> TunnelStatus:
    """Ask the owner to run the tunnel. Idempotent: a second start changes nothing."""
    config = get_config().integrations.tunnel
    _preflight(config)
    with transaction.atomic():
        state, _ = TunnelState.objects.select_for_update().get_or_create(pk=STATE_PK)
        if state.desired != TunnelState.Desired.RUNNING:
            state.desired = TunnelState.Desired.RUNNING
            if state.status != TunnelState.Status.RUNNING:
                state.status = TunnelState.Status.STARTING
            state.error = ""
            state.save()
            audit_record(action="tunnel.start", target="tunnel", target_type="tunnel", actor=actor,
                         request=request, details={"local_port": config.local_port})
    clear_cache()
    return tunnel_status(request)


def tunnel_stop(*, actor: Any = None, request: HttpRequest | None = None) -> TunnelStatus:
    """Ask the owner to stop, and clear the recorded URL at once (webhook URLs stop using it)."""
    with transaction.atomic():
        state, _ = TunnelState.objects.select_for_update().get_or_create(pk=STATE_PK)
        was = (state.desired, state.status, state.public_url)
        state.desired = TunnelState.Desired.STOPPED
        state.status = TunnelState.Status.STOPPED
        state.public_url = ""
        state.error = ""
        state.save()
        if was != (TunnelState.Desired.STOPPED, TunnelState.Status.STOPPED, ""):
            audit_record(action="tunnel.stop", target="tunnel", target_type="tunnel", actor=actor,
                         request=request, details={"was": was[1]})
    clear_cache()
    return tunnel_status(request)


# --- the agent ----------------------------------------------------------------------------

class TunnelAgent(Protocol):
    def start(self, *, port: int, auth_token: str) -> str:
        """Start the agent and one HTTP tunnel to the local port; return its public https URL."""

    def stop(self) -> None: ...

    def is_running(self) -> bool: ...


class PyngrokAgent:
    """pyngrok driving the ngrok agent (its local API, `/api/endpoints`)."""

    def __init__(self, path: str, *, startup_timeout: int, config_path: Path | None = None) -> None:
        from pyngrok import conf

        self.path = path
        config_path = config_path or Path(settings.VAR_DIR) / "ngrok" / "ngrok.yml"
        config_path.parent.mkdir(parents=True, exist_ok=True)
        self.pyngrok_config = conf.PyngrokConfig(ngrok_path=path, config_path=str(config_path),
                                                 startup_timeout=startup_timeout, monitor_thread=False,
                                                 request_timeout=5)
        # The token reaches the agent through its own config file (`agent.authtoken`, mode
        # 0600, only while it starts): never on its command line, where any local user could
        # read it in the process list, and never through this process's environment, which
        # would have to be changed and restored around each start (issue 12 §4: popping
        # NGROK_AUTHTOKEN afterwards made the next start fail with "No ngrok auth token").
        self.pyngrok_config.auth_token = None

    def start(self, *, port: int, auth_token: str) -> str:
        from pyngrok import ngrok
        from pyngrok.exception import PyngrokError

        if not os.path.isfile(self.path):
            # pyngrok would download the agent here; this machine may have no internet.
            raise AgentError(f"the ngrok agent is not installed at {self.path}")
        try:
            self._write_token(auth_token)
        except (OSError, PyngrokError) as exc:
            raise AgentError(f"cannot write the agent's config file ({type(exc).__name__})") from None
        # pyngrok checks its startup timeout only between lines of the agent's output: an
        # agent that prints nothing would block it forever. The watchdog kills such an agent
        # (its stdout closes, pyngrok gives up with "unable to start").
        watchdog = threading.Timer(self.pyngrok_config.startup_timeout + 1, self._kill_starting_agent)
        watchdog.daemon = True
        watchdog.start()
        try:
            tunnel = ngrok.connect(str(port), "http", pyngrok_config=self.pyngrok_config)
        except PyngrokError as exc:
            self.stop()
            raise AgentError(str(exc).replace(auth_token, "[redacted]")[:400]) from None
        finally:
            watchdog.cancel()
            # The agent read its config at startup; the token does not stay on disk.
            try:
                self._write_token(None)
            except (OSError, PyngrokError) as exc:
                logger.warning("could not remove the token from the agent's config file (%s)", type(exc).__name__)
        public_url = tunnel.public_url or ""
        if public_url.startswith("http://"):
            public_url = "https://" + public_url[len("http://"):]
        return public_url

    def _write_token(self, token: str | None) -> None:
        """Set (or, with None, remove) `agent.authtoken` in the agent's own config file."""
        import yaml
        from pyngrok import installer

        path = Path(self.pyngrok_config.config_path or "")
        # Created owner-only before any secret is written into it.
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
        path.chmod(0o600)
        if token:
            installer.install_default_config(str(path), data={"agent": {"authtoken": token}},
                                             ngrok_version=self.pyngrok_config.ngrok_version,
                                             config_version=self.pyngrok_config.config_version)
            return
        with installer.config_file_lock:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            if isinstance(data.get("agent"), dict) and data["agent"].pop("authtoken", None) is not None:
                path.write_text(yaml.safe_dump(data), encoding="utf-8")

    def _kill_starting_agent(self) -> None:
        from pyngrok import process

        # pyngrok's registry of agents by path is the only handle on a process still starting.
        starting = process._current_processes.get(self.path)
        if starting is not None and starting.proc.poll() is None:
            logger.warning("ngrok agent printed nothing within the startup timeout; killing it")
            starting.proc.kill()

    def stop(self) -> None:
        from pyngrok import ngrok

        ngrok.kill(self.pyngrok_config)

    def is_running(self) -> bool:
        from pyngrok import process

        return process.is_process_running(self.path)


class TunnelOwner:
    """The one process that runs the agent; `reconcile()` makes reality match the desired state."""

    def __init__(self, agent: TunnelAgent | None = None, owner_id: str | None = None) -> None:
        self._agent = agent
        self.owner_id = owner_id or f"{socket.gethostname()}:{os.getpid()}"

    def _agent_for(self, config: TunnelConfig) -> TunnelAgent | None:
        if self._agent is None:
            path = agent_path(config)
            if path is None:
                return None
            self._agent = PyngrokAgent(path, startup_timeout=config.startup_timeout_seconds)
        return self._agent

    def _claim(self) -> bool:
        """Conditional UPDATE: only one live owner at a time (claim, then act)."""
        TunnelState.objects.get_or_create(pk=STATE_PK)
        stale = timezone.now() - timedelta(seconds=OWNER_STALE_SECONDS)
        return bool(TunnelState.objects.filter(pk=STATE_PK).filter(
            Q(owner="") | Q(owner=self.owner_id) | Q(owner_heartbeat_at__isnull=True)
            | Q(owner_heartbeat_at__lt=stale)).update(owner=self.owner_id, owner_heartbeat_at=timezone.now()))

    def _record(self, **fields: Any) -> None:
        TunnelState.objects.filter(pk=STATE_PK, owner=self.owner_id).update(**fields)
        clear_cache()

    def reconcile(self) -> None:
        if not self._claim():
            logger.debug("another process owns the tunnel")
            return
        config = get_config().integrations.tunnel
        state = _read_state()
        agent = self._agent
        want = state.desired == TunnelState.Desired.RUNNING and config.enabled
        if not want:
            if agent is not None and agent.is_running():
                agent.stop()
                logger.info("tunnel stopped")
            if state.status != TunnelState.Status.STOPPED or state.public_url:
                self._record(status=TunnelState.Status.STOPPED, public_url="")
            return
        if agent is not None and agent.is_running() and state.status == TunnelState.Status.RUNNING:
            return
        try:
            _preflight(config)
        except (TunnelDisabled, TunnelUnavailable) as exc:
            self._record(status=TunnelState.Status.ERROR, public_url="", error=str(exc.detail)[:500])
            return
        agent = self._agent_for(config)
        if agent is None:  # pragma: no cover - the preflight found it a moment ago
            return
        if agent.is_running():
            agent.stop()
        token = auth_token(config) or ""
        try:
            public_url = agent.start(port=config.local_port, auth_token=token)
        except AgentError as exc:
            logger.warning("tunnel failed to start: %s", exc)
            self._record(status=TunnelState.Status.ERROR, public_url="", error=str(exc)[:500])
            return
        # Record only if nobody asked for a stop while the agent was starting.
        updated = TunnelState.objects.filter(pk=STATE_PK, owner=self.owner_id,
                                             desired=TunnelState.Desired.RUNNING).update(
            status=TunnelState.Status.RUNNING, public_url=public_url, error="")
        clear_cache()
        if not updated:
            agent.stop()
        else:
            logger.info("tunnel running at %s -> localhost:%s", public_url, config.local_port)

    def shutdown(self) -> None:
        """Stop the agent and release ownership; the recorded status says stopped."""
        if self._agent is not None and self._agent.is_running():
            self._agent.stop()
        TunnelState.objects.filter(pk=STATE_PK, owner=self.owner_id).update(
            status=TunnelState.Status.STOPPED, public_url="", owner="", owner_heartbeat_at=None)
        clear_cache()

    def run(self, *, interval: float, stop: threading.Event) -> None:
        try:
            while not stop.is_set():
                try:
                    self.reconcile()
                except DatabaseError:
                    logger.exception("tunnel owner could not reach the database; retrying")
                stop.wait(interval)
        finally:
            self.shutdown()
