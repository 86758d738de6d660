"""Python harness for the real OAuth 2 / OpenID Connect peer (`tests/peers/oidc/server.js`).

`OIDCPeer` starts the Node server (npm `oidc-provider`, pinned in tests/peers/package.json)
on 127.0.0.1, waits for its ready line and talks to it over HTTP:

* the provider's own endpoints (discovery, /auth, /token, /device/auth, ...) are what the
  code under test uses;
* login, consent and device approval are driven here with a `requests.Session`, through the
  JSON interaction routes the server adds (no browser, no HTML scraping);
* `/__test/...` routes (loopback only) count token requests by grant type, register
  clients, revoke grants and expire device codes.

Behaviour of the peer that tests can rely on:

* PKCE S256 is required for every authorization-code request (`plain` is refused).
* Any client allowed the `refresh_token` grant gets a refresh token from the code and device
  flows, no `offline_access` needed. Refresh tokens rotate on every use; presenting a rotated
  one is `invalid_grant` and (as oidc-provider does) revokes the whole grant.
* The authorization response carries `iss` (RFC 9207).
* Scopes: `openid profile email offline_access`, plus the API scopes of one resource server
  (default `api:read api:write`); client_credentials tokens carry the API scopes.
"""
from __future__ import annotations

import atexit
import json
import logging
import os
import shutil
import subprocess
import tempfile
import threading
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Self
from urllib.parse import urljoin, urlsplit

import requests

logger = logging.getLogger(__name__)

PEERS_DIR = Path(__file__).resolve().parent
SERVER_JS = PEERS_DIR / "oidc" / "server.js"
PROVIDER_PACKAGE = PEERS_DIR / "node_modules" / "oidc-provider" / "package.json"
READY_PREFIX = "OIDC_PEER_READY "
DEVICE_VERIFICATION_PATH = "/device"

DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
ALL_GRANT_TYPES = ("authorization_code", "refresh_token", "client_credentials", DEVICE_CODE_GRANT)

# (connect, read) for every call the harness itself makes to the peer.
HTTP_TIMEOUT = (3.0, 10.0)
# Login + consent + callback is about six hops; more means the flow is looping.
MAX_INTERACTION_STEPS = 12


class PeerUnavailable(RuntimeError):
    """Node or the npm packages are missing: the peer cannot start at all."""


class PeerError(RuntimeError):
    """The peer did not start, or answered the harness with something unexpected."""


@dataclass(frozen=True)
class OIDCClient:
    """A client registered at the peer (RFC 7591 metadata names)."""

    client_id: str
    client_secret: str
    redirect_uris: tuple[str, ...] = ("http://127.0.0.1:8999/oauth/callback",)
    grant_types: tuple[str, ...] = ALL_GRANT_TYPES
    token_endpoint_auth_method: str = "client_secret_basic"

    @property
    def redirect_uri(self) -> str:
        return self.redirect_uris[0]

    def metadata(self) -> dict[str, Any]:
        uses_code = "authorization_code" in self.grant_types
        return {
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "redirect_uris": list(self.redirect_uris) if uses_code else [],
            "response_types": ["code"] if uses_code else [],
            "grant_types": list(self.grant_types),
            "token_endpoint_auth_method": self.token_endpoint_auth_method,
        }


DEFAULT_CLIENT = OIDCClient(client_id="synthorg-test", client_secret="synthorg-test-secret")
POST_AUTH_CLIENT = OIDCClient(
    client_id="synthorg-test-post",
    client_secret="synthorg-test-post-secret",
    token_endpoint_auth_method="client_secret_post",
)


@dataclass(frozen=True)
class PeerConfig:
    """What the Node server is started with (see DEFAULTS in oidc/server.js)."""

    access_token_ttl: int = 30
    authorization_code_ttl: int = 60
    refresh_token_ttl: int = 3600
    device_code_ttl: int = 600
    # Added to device authorization responses; oidc-provider sends none (RFC 8628: then 5 s).
    device_interval: int | None = 1
    rotate_refresh_tokens: bool = True
    api_resource: str = "urn:synthorg:test-api"
    api_scopes: tuple[str, ...] = ("api:read", "api:write")
    clients: tuple[OIDCClient, ...] = (DEFAULT_CLIENT, POST_AUTH_CLIENT)

    def to_json(self, port: int) -> str:
        return json.dumps({
            "host": "127.0.0.1",
            "port": port,
            "access_token_ttl": self.access_token_ttl,
            "authorization_code_ttl": self.authorization_code_ttl,
            "refresh_token_ttl": self.refresh_token_ttl,
            "device_code_ttl": self.device_code_ttl,
            "device_interval": self.device_interval,
            "rotate_refresh_tokens": self.rotate_refresh_tokens,
            "api_resource": self.api_resource,
            "api_scopes": list(self.api_scopes),
            "clients": [client.metadata() for client in self.clients],
            "exit_on_stdin_close": True,
        })


@dataclass
class _Process:
    popen: subprocess.Popen[str]
    stderr_file: IO[str]
    stdout_lines: deque[str] = field(default_factory=lambda: deque(maxlen=200))


def find_node() -> str:
    """The node binary, or PeerUnavailable telling what to install."""
    node = shutil.which("node")
    if node is None:
        raise PeerUnavailable("node is not on PATH; the OIDC test peer needs Node.js >= 18 (then run `make npm`)")
    if not PROVIDER_PACKAGE.is_file():
        raise PeerUnavailable(
            f"{PROVIDER_PACKAGE.parent} is missing: run `make npm` (npm ci in tests/peers) before the tests"
        )
    return node


class OIDCPeer:
    """One running oidc-provider server on 127.0.0.1 and the controls the tests need."""

    def __init__(self, *, startup_timeout: float = 20.0) -> None:
        self.startup_timeout = startup_timeout
        self.config = PeerConfig()
        self._process: _Process | None = None
        self._issuer: str | None = None
        self._port: int | None = None
        self._discovery: dict[str, Any] = {}
        self._clients: dict[str, OIDCClient] = {}
        self._http = requests.Session()

    # -- lifecycle -------------------------------------------------------------------

    def start(self, config: PeerConfig | None = None, *, port: int = 0) -> Self:
        """Start the server (port 0 = a free one) and wait for its ready line."""
        if self._process is not None:
            raise PeerError("the OIDC peer is already running")
        node = find_node()
        self.config = config or PeerConfig()
        stderr_file = tempfile.TemporaryFile(mode="w+", prefix="oidc-peer-", suffix=".log")
        env = {**os.environ, "OIDC_PEER_CONFIG": self.config.to_json(port), "NODE_ENV": "test"}
        popen = subprocess.Popen(
            [node, str(SERVER_JS)],
            cwd=PEERS_DIR,
            env=env,
            stdin=subprocess.PIPE,  # the server exits when this closes, even if we are killed
            stdout=subprocess.PIPE,
            stderr=stderr_file,
            text=True,
        )
        self._process = _Process(popen=popen, stderr_file=stderr_file)
        atexit.register(self.stop)
        ready: dict[str, Any] = {}
        ready_event = threading.Event()
        threading.Thread(
            target=self._read_stdout, args=(self._process, ready, ready_event), name="oidc-peer-stdout", daemon=True
        ).start()
        if not ready_event.wait(self.startup_timeout) or not ready:
            detail = self._stderr_tail()
            self.stop()
            raise PeerError(f"the OIDC peer did not become ready within {self.startup_timeout}s: {detail}")
        self._issuer = ready["issuer"]
        self._port = int(ready["port"])
        self._discovery = self._get_json("/.well-known/openid-configuration")
        self._clients = {client.client_id: client for client in self.config.clients}
        logger.info("OIDC peer ready at %s (pid %s)", self._issuer, popen.pid)
        return self

    def stop(self) -> None:
        """Stop the server: close stdin, SIGTERM, then SIGKILL; never leaves a process behind."""
        process, self._process = self._process, None
        if process is None:
            return
        atexit.unregister(self.stop)
        popen = process.popen
        try:
            if popen.stdin is not None:
                popen.stdin.close()
            if popen.poll() is None:
                popen.terminate()
            try:
                popen.wait(timeout=5)
            except subprocess.TimeoutExpired:
                popen.kill()
                popen.wait(timeout=5)
        finally:
            if popen.stdout is not None:
                popen.stdout.close()
            process.stderr_file.close()
            self._http.close()
            self._http = requests.Session()

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.popen.poll() is None

    @property
    def pid(self) -> int | None:
        return self._process.popen.pid if self._process else None

    def __enter__(self) -> Self:
        return self if self._process else self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @staticmethod
    def _read_stdout(process: _Process, ready: dict[str, Any], ready_event: threading.Event) -> None:
        # Reads until EOF so the pipe never fills; the first ready line wakes start().
        assert process.popen.stdout is not None
        for line in process.popen.stdout:
            process.stdout_lines.append(line.rstrip("\n"))
            if not ready_event.is_set() and line.startswith(READY_PREFIX):
                ready.update(json.loads(line[len(READY_PREFIX):]))
                ready_event.set()
        ready_event.set()  # EOF: the process died; start() reports its stderr

    def _stderr_tail(self, limit: int = 2000) -> str:
        if self._process is None:
            return ""
        handle = self._process.stderr_file
        handle.flush()
        handle.seek(0)
        text = handle.read()
        code = self._process.popen.poll()
        status = "still running" if code is None else f"exit code {code}"
        return f"{status}; stderr: {text[-limit:] or '(empty)'}"

    # -- endpoints -------------------------------------------------------------------

    @property
    def issuer(self) -> str:
        if self._issuer is None:
            raise PeerError("the OIDC peer is not running")
        return self._issuer

    @property
    def port(self) -> int:
        if self._port is None:
            raise PeerError("the OIDC peer is not running")
        return self._port

    @property
    def discovery(self) -> dict[str, Any]:
        """The provider's /.well-known/openid-configuration document."""
        return dict(self._discovery)

    @property
    def authorization_endpoint(self) -> str:
        return self._discovery["authorization_endpoint"]

    @property
    def token_endpoint(self) -> str:
        return self._discovery["token_endpoint"]

    @property
    def device_authorization_endpoint(self) -> str:
        return self._discovery["device_authorization_endpoint"]

    @property
    def revocation_endpoint(self) -> str:
        return self._discovery["revocation_endpoint"]

    @property
    def introspection_endpoint(self) -> str:
        return self._discovery["introspection_endpoint"]

    @property
    def device_verification_uri(self) -> str:
        return self.issuer + DEVICE_VERIFICATION_PATH

    # -- clients ---------------------------------------------------------------------

    def client(self, client_id: str | None = None) -> OIDCClient:
        """A registered client; the default one (all four grants, client_secret_basic) without an id."""
        return self._clients[client_id or DEFAULT_CLIENT.client_id]

    def register(self, client: OIDCClient) -> OIDCClient:
        """Register (or replace) a client while the server runs, e.g. with a live server's redirect_uri."""
        self._post_json("/__test/clients", client.metadata(), expect=201)
        self._clients[client.client_id] = client
        return client

    # -- test-only controls ----------------------------------------------------------

    def token_requests(self, grant_type: str | None = None) -> int:
        """POSTs the token endpoint has seen since the last reset, of one grant type or all."""
        summary = self._get_json("/__test/token-requests")
        if grant_type is None:
            return int(summary["total"])
        return int(summary["by_grant_type"].get(grant_type, 0))

    def token_request_log(self) -> list[dict[str, Any]]:
        """Each token request since the last reset: grant_type, client_id, status, error."""
        return list(self._get_json("/__test/token-requests")["requests"])

    def reset_counters(self) -> None:
        self._post_json("/__test/reset", {}, expect=204)

    def revoke_grants(self, client_id: str) -> int:
        """Revoke every grant of a client (and its tokens): a later refresh gets invalid_grant."""
        return int(self._post_json("/__test/grants/revoke", {"client_id": client_id})["revoked_grants"])

    def expire_device_code(self, user_code: str) -> None:
        """Make a pending device code expired, so polling it answers expired_token."""
        self._post_json("/__test/device/expire", {"user_code": user_code}, expect=204)

    # -- the user's side -------------------------------------------------------------

    def complete_authorization(self, authorization_url: str, *, username: str = "alice") -> str:
        """Follow the authorization request as a user who logs in and consents.

        Returns the final redirect (the client's redirect_uri with code, state, iss) without
        requesting it. A request the provider rejects before any interaction (bad PKCE,
        unknown scope) also ends at the redirect_uri, carrying its error.
        """
        location, response = self._drive(requests.Session(), authorization_url, username=username, deny=False)
        if location is None:
            raise PeerError(f"authorization ended on the peer, not at a redirect: {_describe(response)}")
        return location

    def deny_authorization(self, authorization_url: str) -> str:
        """Like complete_authorization, but the user refuses: the redirect carries error=access_denied."""
        location, response = self._drive(requests.Session(), authorization_url, username="", deny=True)
        if location is None:
            raise PeerError(f"authorization ended on the peer, not at a redirect: {_describe(response)}")
        return location

    def approve_device(self, user_code: str, *, username: str = "alice") -> None:
        """Enter the user code at the verification URI, log in and consent (RFC 8628 section 3.3)."""
        session, confirm = self._device_confirm_page(user_code)
        response = session.post(
            self.device_verification_uri,
            data={"xsrf": confirm["xsrf"], "user_code": user_code, "confirm": "yes"},
            allow_redirects=False,
            timeout=HTTP_TIMEOUT,
        )
        location, final = self._drive(session, None, username=username, deny=False, response=response)
        page = _json_or_none(final) if final is not None else None
        if location is not None or page is None or page.get("page") != "device_success":
            raise PeerError(f"device approval did not succeed: {location or _describe(final)}")

    def deny_device(self, user_code: str) -> None:
        """Enter the user code, then abort: polling the device code answers access_denied."""
        session, confirm = self._device_confirm_page(user_code)
        response = session.post(
            self.device_verification_uri,
            data={"xsrf": confirm["xsrf"], "user_code": user_code, "abort": "yes"},
            timeout=HTTP_TIMEOUT,
        )
        page = _json_or_none(response)
        if page is None or page.get("error") != "AbortedError":
            raise PeerError(f"device denial was not recorded: {_describe(response)}")

    def _device_confirm_page(self, user_code: str) -> tuple[requests.Session, dict[str, Any]]:
        session = requests.Session()
        form = session.get(self.device_verification_uri, timeout=HTTP_TIMEOUT).json()
        response = session.post(
            self.device_verification_uri,
            data={"xsrf": form["xsrf"], "user_code": user_code},
            timeout=HTTP_TIMEOUT,
        )
        page = _json_or_none(response)
        if page is None or page.get("page") != "device_confirm":
            raise PeerError(f"user code {user_code!r} was not accepted: {_describe(response)}")
        return session, page

    def _drive(
        self,
        session: requests.Session,
        url: str | None,
        *,
        username: str,
        deny: bool,
        response: requests.Response | None = None,
    ) -> tuple[str | None, requests.Response | None]:
        """Follow redirects on the peer, answering login/consent, until the flow leaves it.

        Returns (location, None) when a redirect points off the peer, else (None, response)
        for the first non-redirect answer.
        """
        if response is None:
            assert url is not None
            response = session.get(url, allow_redirects=False, timeout=HTTP_TIMEOUT)
        peer_origin = _origin(self.issuer)
        for _ in range(MAX_INTERACTION_STEPS):
            if not response.is_redirect:
                return None, response
            location = urljoin(response.url, response.headers["Location"])
            if _origin(location) != peer_origin:
                return location, None
            if urlsplit(location).path.startswith("/interaction/"):
                response = self._interact(session, location, username=username, deny=deny)
            else:
                response = session.get(location, allow_redirects=False, timeout=HTTP_TIMEOUT)
        raise PeerError(f"more than {MAX_INTERACTION_STEPS} redirects on the peer")

    def _interact(self, session: requests.Session, url: str, *, username: str, deny: bool) -> requests.Response:
        details = session.get(url, timeout=HTTP_TIMEOUT)
        if details.status_code != 200:
            raise PeerError(f"interaction {url} failed: {_describe(details)}")
        interaction = details.json()
        prompt = interaction["prompt"]
        if deny:
            action, data = "abort", {}
        elif prompt == "login":
            action, data = "login", {"login": username}
        elif prompt == "consent":
            action, data = "confirm", {}
        else:
            raise PeerError(f"unexpected interaction prompt {prompt!r}")
        target = urljoin(url, interaction["actions"][action])
        answer = session.post(target, data=data, allow_redirects=False, timeout=HTTP_TIMEOUT)
        if not answer.is_redirect:
            raise PeerError(f"interaction {action} failed: {_describe(answer)}")
        return answer

    # -- plumbing --------------------------------------------------------------------

    def _get_json(self, path: str) -> dict[str, Any]:
        response = self._http.get(self.issuer + path, timeout=HTTP_TIMEOUT)
        if response.status_code != 200:
            raise PeerError(f"GET {path}: {_describe(response)}")
        return response.json()

    def _post_json(self, path: str, payload: dict[str, Any], *, expect: int = 200) -> dict[str, Any]:
        response = self._http.post(self.issuer + path, json=payload, timeout=HTTP_TIMEOUT)
        if response.status_code != expect:
            raise PeerError(f"POST {path}: {_describe(response)}")
        return response.json() if response.content else {}


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc


def _json_or_none(response: requests.Response | None) -> dict[str, Any] | None:
    if response is None:
        return None
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _describe(response: requests.Response | None) -> str:
    if response is None:
        return "no response"
    return f"HTTP {response.status_code} {response.text[:300]!r}"
