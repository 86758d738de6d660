"""A TCP listener on a loopback address that speaks just enough of a protocol to be handed a
credential, and records every byte it receives: the "attacker's host" of the destination tests.

    with BaitListener("127.0.0.2", protocol="smtp") as trap:
        ...  # point a connection at trap.host / trap.port, run its health check
        assert not trap.leaked(CANARY)

Protocols: ``http`` (reads the request, answers 401), ``smtp`` (greets, offers AUTH PLAIN and
LOGIN without STARTTLS, refuses every AUTH), ``postgres`` (refuses TLS, then asks for a
cleartext password), ``raw`` (only reads). ``leaked()`` also looks inside base64 tokens, as
AUTH PLAIN and HTTP Basic carry the secret encoded.
"""
from __future__ import annotations

import base64
import binascii
import re
import socket
import struct
import threading
from types import TracebackType

_BASE64_TOKEN = re.compile(rb"[A-Za-z0-9+/=_-]{8,}")


class BaitListener:
    def __init__(self, host: str = "127.0.0.1", *, port: int = 0, protocol: str = "raw") -> None:
        self.protocol = protocol
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        self._sock.listen(16)
        self._sock.settimeout(0.2)
        self.host, self.port = self._sock.getsockname()[:2]
        self.received = bytearray()
        self.connections = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> BaitListener:
        thread = threading.Thread(target=self._accept_loop, daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=3)
        self._sock.close()

    def __enter__(self) -> BaitListener:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def leaked(self, secret: str) -> bool:
        """Whether ``secret`` arrived, in clear or inside a base64 token."""
        with self._lock:
            data = bytes(self.received)
        needle = secret.encode()
        if needle in data:
            return True
        for token in _BASE64_TOKEN.findall(data):
            for decode in (base64.b64decode, base64.urlsafe_b64decode):
                try:
                    if needle in decode(token + b"=" * (-len(token) % 4)):
                        return True
                except (binascii.Error, ValueError):
                    continue
        return False

    # --- serving ------------------------------------------------------------------------------

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self.connections += 1
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _recv(self, conn: socket.socket, size: int = 65536) -> bytes:
        try:
            data = conn.recv(size)
        except OSError:
            return b""
        with self._lock:
            self.received.extend(data)
        return data

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(2)
        try:
            getattr(self, f"_serve_{self.protocol}")(conn)
        except OSError:
            pass  # the client hung up: what it sent is recorded
        finally:
            conn.close()

    def _serve_raw(self, conn: socket.socket) -> None:
        while not self._stop.is_set() and self._recv(conn):
            pass

    def _serve_http(self, conn: socket.socket) -> None:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = self._recv(conn)
            if not chunk:
                return
            data += chunk
        if b"content-length:" in data.lower():
            self._recv(conn)  # a form body (client_secret_post) follows the headers
        conn.sendall(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")

    def _serve_smtp(self, conn: socket.socket) -> None:
        conn.sendall(b"220 bait ESMTP\r\n")
        buffer = b""
        while not self._stop.is_set():
            chunk = self._recv(conn)
            if not chunk:
                return
            buffer += chunk
            while b"\r\n" in buffer:
                line, buffer = buffer.split(b"\r\n", 1)
                verb = line[:4].upper()
                if verb in (b"EHLO", b"HELO"):
                    conn.sendall(b"250-bait\r\n250 AUTH PLAIN LOGIN\r\n")
                elif verb == b"AUTH":
                    if line.upper().strip() == b"AUTH LOGIN":
                        conn.sendall(b"334 VXNlcm5hbWU6\r\n")
                        continue
                    conn.sendall(b"535 5.7.8 no\r\n")
                elif verb == b"QUIT":
                    conn.sendall(b"221 bye\r\n")
                    return
                else:
                    conn.sendall(b"250 ok\r\n")

    def _read_exact(self, conn: socket.socket, size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = self._recv(conn, size - len(data))
            if not chunk:
                raise OSError("closed")
            data += chunk
        return data

    def _serve_postgres(self, conn: socket.socket) -> None:
        while True:
            (length,) = struct.unpack("!I", self._read_exact(conn, 4))
            body = self._read_exact(conn, length - 4)
            code = struct.unpack("!I", body[:4])[0] if len(body) >= 4 else 0
            if code in (80877103, 80877104):  # SSLRequest, GSSENCRequest: refused
                conn.sendall(b"N")
                continue
            break
        conn.sendall(b"R" + struct.pack("!II", 8, 3))  # AuthenticationCleartextPassword
        self._recv(conn)  # the PasswordMessage
        conn.sendall(b"E" + struct.pack("!I", 4 + 1) + b"\x00")


def listener_set(protocol: str) -> tuple[BaitListener, BaitListener, BaitListener]:
    """(home, host_trap, port_trap): the destination the owner chose (127.0.0.1:P), an attacker's
    host on the same port (127.0.0.2:P) and an attacker's port on the same host (127.0.0.1:Q), so
    that changing only the host, only the port or only a URL can reach a trap."""
    for _ in range(20):
        home = BaitListener("127.0.0.1", protocol=protocol)
        try:
            host_trap = BaitListener("127.0.0.2", port=home.port, protocol=protocol)
        except OSError:
            home._sock.close()
            continue
        port_trap = BaitListener("127.0.0.1", protocol=protocol)
        return home.start(), host_trap.start(), port_trap.start()
    raise RuntimeError("no free port on both 127.0.0.1 and 127.0.0.2")
