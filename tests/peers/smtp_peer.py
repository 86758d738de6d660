"""A real SMTP server (aiosmtpd) on 127.0.0.1 for the smtp health check, with STARTTLS and AUTH variants.

    with SmtpPeer(tls=TlsIdentity.create("localhost"), users={"alice": "pw"}) as peer:
        ... connect to 127.0.0.1:peer.port, EHLO, STARTTLS, AUTH, QUIT ...
        assert peer.sessions[-1].authenticated_as == "alice"

Without ``tls`` the server offers no STARTTLS. With ``users`` it offers AUTH PLAIN/LOGIN
(only after STARTTLS when ``tls`` is set, as a real relay would); a login with an unknown
user or a wrong password is refused with 535. ``peer.commands`` records every command
verb the server saw, in order.
"""
from __future__ import annotations

import socket
import ssl
import threading
from types import TracebackType
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.peers.http_peer import TlsIdentity


class _Handler:
    def __init__(self, peer: SmtpPeer) -> None:
        self.peer = peer

    async def handle_EHLO(self, server: Any, session: Any, envelope: Any, hostname: str,
                          responses: list[str]) -> list[str]:
        self.peer._seen("EHLO")
        session.host_name = hostname
        return responses

    def handle_STARTTLS(self, server: Any, session: Any, envelope: Any) -> bool:
        # aiosmtpd calls this hook synchronously, after the TLS handshake succeeded.
        self.peer._seen("STARTTLS")
        return True

    async def handle_QUIT(self, server: Any, session: Any, envelope: Any) -> str:
        self.peer._seen("QUIT")
        return "221 Bye"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class SmtpPeer:
    def __init__(self, *, tls: TlsIdentity | None = None, users: dict[str, str] | None = None) -> None:
        self.tls = tls
        self.users = dict(users or {})
        self.commands: list[str] = []
        self.logins: list[tuple[str, bool]] = []
        self.lock = threading.Lock()
        self._controller: Controller | None = None

    def _seen(self, verb: str) -> None:
        with self.lock:
            self.commands.append(verb)

    def _authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        self._seen("AUTH")
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        user, password = auth_data.login.decode(), auth_data.password.decode()
        ok = self.users.get(user) == password
        with self.lock:
            self.logins.append((user, ok))
        return AuthResult(success=ok, handled=False)

    @property
    def port(self) -> int:
        assert self._controller is not None, "start() the peer first"
        return int(self._controller.port)

    def start(self) -> SmtpPeer:
        kwargs: dict[str, Any] = {}
        if self.tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(self.tls.cert_path, self.tls.key_path)
            kwargs["tls_context"] = context
            kwargs["require_starttls"] = False
        if self.users:
            kwargs["authenticator"] = self._authenticate
            # With TLS, AUTH only after STARTTLS (as a real relay); without, allowed in clear for the test.
            kwargs["auth_require_tls"] = self.tls is not None
        controller = Controller(_Handler(self), hostname="127.0.0.1", port=_free_port(), ready_timeout=10,
                                server_hostname="localhost", **kwargs)
        controller.start()
        self._controller = controller
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None
        if self.tls is not None:
            self.tls.remove()

    def __enter__(self) -> SmtpPeer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
