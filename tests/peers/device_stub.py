"""A scripted device-flow authorization server (RFC 8628) for answers the real peer never gives.

oidc-provider never answers `slow_down` and cannot be told what to answer next, so the
client's polling discipline is tested against this stub instead: its token endpoint plays
a script (`pending()`, `slow_down()`, `token(...)`, `error(...)`) one entry per poll and
records when each poll arrived, so a test can check the client waited `interval`, and
`interval + 5` after a slow_down.

    stub = DeviceStub(interval=1, script=[pending(), slow_down(), token()]).start()
    ...  # point the client at stub.device_authorization_endpoint / stub.token_endpoint
    assert stub.poll_gaps()[1] >= 6
    stub.stop()
"""
from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs

DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
DEVICE_AUTHORIZATION_PATH = "/device/auth"
TOKEN_PATH = "/token"
MAX_BODY_BYTES = 64 * 1024


@dataclass(frozen=True)
class StubAnswer:
    """One scripted token-endpoint answer."""

    status: int
    body: dict[str, Any]


def pending() -> StubAnswer:
    return StubAnswer(400, {"error": "authorization_pending"})


def slow_down() -> StubAnswer:
    return StubAnswer(400, {"error": "slow_down"})


def error(code: str, description: str | None = None, *, status: int = 400) -> StubAnswer:
    body = {"error": code}
    if description:
        body["error_description"] = description
    return StubAnswer(status, body)


STUB_ACCESS_TOKEN = "stub-access-token"
STUB_REFRESH_TOKEN = "stub-refresh-token"


def token(
    access_token: str = STUB_ACCESS_TOKEN,
    *,
    refresh_token: str | None = STUB_REFRESH_TOKEN,
    expires_in: int = 3600,
    scope: str | None = None,
) -> StubAnswer:
    body: dict[str, Any] = {"access_token": access_token, "token_type": "Bearer", "expires_in": expires_in}
    if refresh_token is not None:
        body["refresh_token"] = refresh_token
    if scope is not None:
        body["scope"] = scope
    return StubAnswer(200, body)


# Answered once the script runs out: a client still polling then is a defect the test should see.
SCRIPT_EXHAUSTED = StubAnswer(500, {"error": "server_error", "error_description": "device stub script exhausted"})


@dataclass(frozen=True)
class RecordedRequest:
    path: str
    at: float  # time.monotonic() on arrival
    form: dict[str, str]
    headers: dict[str, str]
    answer: StubAnswer


@dataclass
class _State:
    script: list[StubAnswer] = field(default_factory=list)
    requests: list[RecordedRequest] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class DeviceStub:
    """Device authorization + token endpoints on 127.0.0.1 that follow a script."""

    def __init__(
        self,
        *,
        script: Iterable[StubAnswer] = (),
        interval: int | None = 5,
        device_code: str = "stub-device-code",
        user_code: str = "WDJB-MJHT",
        expires_in: int = 600,
    ) -> None:
        self.interval = interval
        self.device_code = device_code
        self.user_code = user_code
        self.expires_in = expires_in
        self._state = _State(script=list(script))
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> Self:
        if self._server is not None:
            raise RuntimeError("the device stub is already running")
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="device-stub", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Self:
        return self if self._server else self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- addresses -------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the device stub is not running")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def device_authorization_endpoint(self) -> str:
        return self.base_url + DEVICE_AUTHORIZATION_PATH

    @property
    def token_endpoint(self) -> str:
        return self.base_url + TOKEN_PATH

    @property
    def verification_uri(self) -> str:
        return self.base_url + "/device"

    # -- script and records ----------------------------------------------------------

    def set_script(self, answers: Iterable[StubAnswer]) -> None:
        """Replace what the next token polls are answered with, in order."""
        with self._state.lock:
            self._state.script = list(answers)

    @property
    def remaining(self) -> int:
        with self._state.lock:
            return len(self._state.script)

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._state.lock:
            return list(self._state.requests)

    def token_polls(self) -> list[RecordedRequest]:
        return [request for request in self.requests if request.path == TOKEN_PATH]

    def poll_gaps(self) -> list[float]:
        """Seconds between consecutive token polls (n polls give n - 1 gaps)."""
        times = [request.at for request in self.token_polls()]
        return [later - earlier for earlier, later in itertools.pairwise(times)]

    # -- request handling (called on server threads) ---------------------------------

    def _answer(self, path: str, form: dict[str, str]) -> StubAnswer:
        if path == DEVICE_AUTHORIZATION_PATH:
            body: dict[str, Any] = {
                "device_code": self.device_code,
                "user_code": self.user_code,
                "verification_uri": self.verification_uri,
                "verification_uri_complete": f"{self.verification_uri}?user_code={self.user_code}",
                "expires_in": self.expires_in,
            }
            if self.interval is not None:
                body["interval"] = self.interval
            return StubAnswer(200, body)
        if path != TOKEN_PATH:
            return StubAnswer(404, {"error": "not_found"})
        if form.get("grant_type") != DEVICE_CODE_GRANT:
            return error("unsupported_grant_type")
        if form.get("device_code") != self.device_code:
            return error("invalid_grant", "unknown device_code")
        if not self._state.script:
            return SCRIPT_EXHAUSTED
        return self._state.script.pop(0)

    def _handle(self, path: str, form: dict[str, str], headers: dict[str, str]) -> StubAnswer:
        with self._state.lock:
            arrived = time.monotonic()
            answer = self._answer(path, form)
            self._state.requests.append(RecordedRequest(path, arrived, form, headers, answer))
        return answer


def _handler_for(stub: DeviceStub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY_BYTES:
                self._send(StubAnswer(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"error": "invalid_request"}))
                return
            raw = self.rfile.read(length).decode("utf-8", "replace")
            form = {key: values[-1] for key, values in parse_qs(raw).items()}
            path = self.path.split("?", 1)[0]
            self._send(stub._handle(path, form, dict(self.headers.items())))

        def do_GET(self) -> None:
            self._send(StubAnswer(HTTPStatus.METHOD_NOT_ALLOWED, {"error": "invalid_request"}))

        def _send(self, answer: StubAnswer) -> None:
            payload = json.dumps(answer.body).encode()
            self.send_response(answer.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Cache-Control", "no-store")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            return  # keep pytest output clean; requests are recorded on the stub instead

    return Handler
