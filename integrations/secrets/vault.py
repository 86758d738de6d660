"""`secret_manager_vault`: HashiCorp Vault / OpenBao, KV version 2, through hvac.

One secret per owner object at ``<mount>/data/<path_prefix>/<kind>/<owner id>``, a JSON object of
fields. Writes use check-and-set on the version the caller read (0 = must not exist yet), so two
concurrent writers can never silently drop each other's fields. Auth is a token or AppRole; a
renewable token is renewed before its TTL ends, a refused renewal logs in again, and a 403 on
any call triggers one re-login and one retry (a token revoked under us).
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import hvac
import hvac.exceptions
import requests

from integrations.secrets.base import SecretBackendUnavailable, SecretUnavailable
from integrations.secrets.envvars import read_env
from synthorg.config import VaultConfig
from synthorg.metrics import SECRET_BACKEND_ERRORS

logger = logging.getLogger(__name__)

T = TypeVar("T")
# Renew when less than this share of the token's TTL is left.
RENEW_AT_FRACTION = 0.5


class CheckAndSetFailed(Exception):
    """The secret's version moved since it was read (another writer got there first)."""


class VaultManager:
    name = "secret_manager_vault"

    def __init__(self, config: VaultConfig) -> None:
        self.config = config
        self._lock = threading.RLock()
        self._client: hvac.Client | None = None
        self._token_expires_at: float | None = None  # monotonic; None = does not expire
        self._token_ttl = 0.0
        self._renewable = False

    # --- auth ---------------------------------------------------------------------------

    def _new_client(self) -> hvac.Client:
        cfg = self.config
        return hvac.Client(url=cfg.url, namespace=cfg.namespace or None, timeout=cfg.timeout_seconds,
                           verify=cfg.ca_bundle or True)

    def _unavailable(self, what: str) -> SecretBackendUnavailable:
        SECRET_BACKEND_ERRORS.labels("secret_manager_vault").inc()
        return SecretBackendUnavailable(f"The Vault secret backend is unavailable: {what}.")

    def _login(self) -> hvac.Client:
        """A client holding a fresh token (token auth: the env var again; AppRole: a new login)."""
        cfg = self.config
        client = self._new_client()
        try:
            if cfg.auth == "approle":
                role_id, secret_id = read_env(cfg.role_id_env), read_env(cfg.secret_id_env)
                if not role_id or not secret_id:
                    raise self._unavailable(f"{cfg.role_id_env} and {cfg.secret_id_env} must be set for AppRole login")
                auth = client.auth.approle.login(role_id=role_id, secret_id=secret_id)["auth"]
                ttl, renewable = float(auth.get("lease_duration") or 0), bool(auth.get("renewable"))
            else:
                token = read_env(cfg.token_env)
                if not token:
                    raise self._unavailable(f"{cfg.token_env} is not set")
                client.token = token
                data = client.auth.token.lookup_self()["data"]
                ttl, renewable = float(data.get("ttl") or 0), bool(data.get("renewable"))
        except hvac.exceptions.VaultError as exc:
            raise self._unavailable(f"login refused ({type(exc).__name__})") from None
        except requests.RequestException as exc:
            raise self._unavailable(f"cannot reach {cfg.url} ({type(exc).__name__})") from None
        self._set_lease(ttl, renewable)
        logger.info("vault: logged in (%s auth, ttl %ss, renewable %s)", cfg.auth, int(ttl), renewable)
        return client

    def _set_lease(self, ttl: float, renewable: bool) -> None:
        self._token_ttl, self._renewable = ttl, renewable
        self._token_expires_at = time.monotonic() + ttl if ttl > 0 else None

    def _renew_or_login(self, client: hvac.Client) -> hvac.Client:
        if self._renewable:
            try:
                auth = client.auth.token.renew_self()["auth"]
                self._set_lease(float(auth.get("lease_duration") or 0), bool(auth.get("renewable")))
                logger.info("vault: token renewed (ttl %ss)", int(self._token_ttl))
                # Vault caps renewals at the token's max TTL: a renewal that barely extends it
                # is as good as refused, so log in again rather than renew every call.
                if self._token_ttl > 2:
                    return client
            except (hvac.exceptions.VaultError, requests.RequestException) as exc:
                logger.info("vault: token renewal refused (%s); logging in again", type(exc).__name__)
        return self._login()

    def client(self) -> hvac.Client:
        with self._lock:
            if self._client is None:
                self._client = self._login()
            elif self._token_expires_at is not None and \
                    self._token_expires_at - time.monotonic() < self._token_ttl * RENEW_AT_FRACTION:
                self._client = self._renew_or_login(self._client)
            return self._client

    def _call(self, operation: Callable[[hvac.Client], T], what: str) -> T:
        """Run ``operation`` with a logged-in client: one re-login and retry on 403; an
        unreachable or sealed server is SecretBackendUnavailable."""
        for attempt in (1, 2):
            client = self.client()
            try:
                return operation(client)
            except hvac.exceptions.Forbidden:
                if attempt == 2:
                    raise self._unavailable(f"{what} refused (403 after a fresh login)") from None
                logger.info("vault: 403 on %s; logging in again once", what)
                with self._lock:
                    self._client = None
            except hvac.exceptions.VaultDown:
                raise self._unavailable("the server is sealed or in maintenance") from None
            except (hvac.exceptions.InternalServerError, hvac.exceptions.BadGateway,
                    hvac.exceptions.RateLimitExceeded) as exc:
                raise self._unavailable(f"{what} failed ({type(exc).__name__})") from None
            except requests.RequestException as exc:
                raise self._unavailable(f"cannot reach {self.config.url} ({type(exc).__name__})") from None
            except hvac.exceptions.VaultError as exc:
                # Anything else Vault refuses (a bad request, a wrong mount, an unexpected answer) is
                # a 503 too, never a 500: hvac's own message names the path, so only its class goes on.
                raise self._unavailable(f"{what} refused ({type(exc).__name__})") from None
        raise AssertionError("unreachable")

    # --- secrets ------------------------------------------------------------------------

    def location(self, kind: str, owner_id: str) -> str:
        return f"{self.config.path_prefix}/{kind}/{owner_id}"

    def write(self, location: str, values: dict[str, str], *, version: str | None) -> tuple[str, str]:
        """Write a new version; ``version`` is the one read (None: the secret must not exist yet).
        Returns (location, new version). Raises CheckAndSetFailed if someone else wrote in between."""
        cas = int(version) if version else 0

        def op(client: hvac.Client) -> str:
            try:
                response = client.secrets.kv.v2.create_or_update_secret(
                    path=location, secret=values, cas=cas, mount_point=self.config.mount)
            except hvac.exceptions.InvalidRequest as exc:
                if "check-and-set" in str(exc):
                    raise CheckAndSetFailed(location) from None
                raise
            return location, str(response["data"]["version"])

        return self._call(op, "write")

    def current_version(self, location: str) -> str | None:
        def op(client: hvac.Client) -> str | None:
            try:
                meta = client.secrets.kv.v2.read_secret_metadata(path=location, mount_point=self.config.mount)
            except hvac.exceptions.InvalidPath:
                return None
            return str(meta["data"]["current_version"])

        return self._call(op, "metadata read")

    def read(self, location: str, version: str) -> dict[str, str]:
        def op(client: hvac.Client) -> dict[str, str]:
            try:
                response = client.secrets.kv.v2.read_secret_version(
                    path=location, version=int(version) if version else None,
                    mount_point=self.config.mount, raise_on_deleted_version=True)
            except hvac.exceptions.InvalidPath:
                raise SecretUnavailable("The secret is missing from Vault.", code="secret_missing") from None
            data = response["data"]["data"]
            return {str(k): str(v) for k, v in (data or {}).items()}

        return self._call(op, "read")

    def destroy(self, location: str) -> None:
        """Delete the metadata and every version; a secret already gone is fine (idempotent)."""
        def op(client: hvac.Client) -> None:
            try:
                client.secrets.kv.v2.delete_metadata_and_all_versions(path=location, mount_point=self.config.mount)
            except hvac.exceptions.InvalidPath:
                return None

        self._call(op, "delete")

    def status(self) -> dict[str, Any]:
        """For /readyz: reachable, unsealed, authenticated (never raises)."""
        state: dict[str, Any] = {"backend": self.name, "reachable": False, "unsealed": False, "authenticated": False}
        try:
            health = self._new_client().sys.read_health_status(method="GET")
            if not isinstance(health, dict):  # hvac returns the raw response for non-200 codes
                health = health.json()
            state["reachable"] = True
            state["unsealed"] = bool(health.get("initialized")) and not health.get("sealed")
            if state["unsealed"]:
                self._call(lambda client: client.auth.token.lookup_self(), "token lookup")
                state["authenticated"] = True
        except SecretBackendUnavailable as exc:
            state["error"] = exc.detail
        except (requests.RequestException, ValueError, hvac.exceptions.VaultError) as exc:
            state["error"] = f"cannot reach {self.config.url} ({type(exc).__name__})"
        state["ok"] = state["reachable"] and state["unsealed"] and state["authenticated"]
        return state
