"""A real HTTP(S) server on 127.0.0.1 for tests of outbound calls, with scripted answers.

    with HttpPeer() as peer:
        peer.script("/flaky", Reply(503), Reply(200, b"ok"))   # in order; the last one repeats
        http_request("GET", peer.url("/flaky"), timeout=(1, 1), retry=1)
        assert [r.method for r in peer.received] == ["GET", "GET"]

Built-in paths (when no script is set for the path):
    /status/<code>          answer <code>
    /redirect               302 to /status/200
    /head-405               405 to HEAD, 200 to GET (servers that do not implement HEAD)
    /retry-after/<value>    429 with ``Retry-After: <value>`` (URL-decoded, so an HTTP-date works)
    /hang/<seconds>         answer 200 after <seconds>, or at once when the peer stops
    /echo                   200 with JSON {"method", "path", "headers"} as received
    /bytes/<n>              200 with n bytes
Everything else is 404. ``HttpPeer(tls=TlsIdentity.create("good.test"))`` serves HTTPS with a
certificate for that name signed by a throwaway CA (``identity.ca_path``).

Each peer binds a free port, serves on its own threads, and ``stop()`` ends every thread
and removes every file it made.
"""
from __future__ import annotations

import datetime
import json
import shutil
import socket
import ssl
import struct
import tempfile
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import unquote, urlsplit


@dataclass(frozen=True)
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds to hang before answering
    reset: bool = False  # drop the connection with a TCP RST instead of answering


@dataclass(frozen=True)
class Received:
    method: str
    path: str  # with its query string, as sent
    headers: dict[str, str]
    body: bytes


@dataclass
class TlsIdentity:
    """A CA and a server certificate for ``hostname``, written to a temporary directory."""

    hostname: str
    directory: Path
    ca_path: Path
    cert_path: Path
    key_path: Path

    @classmethod
    def create(cls, hostname: str) -> TlsIdentity:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        now = datetime.datetime.now(datetime.UTC)
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "synthorg test CA")])
        ca_cert = (
            x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
            .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False),
                           critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        directory = Path(tempfile.mkdtemp(prefix="synthorg-http-peer-"))
        identity = cls(hostname, directory, directory / "ca.pem", directory / "cert.pem", directory / "key.pem")
        identity.ca_path.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
        identity.cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        identity.key_path.write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        return identity

    def remove(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)


class _Server(ThreadingHTTPServer):
    daemon_threads = False  # server_close() joins every handler thread: no leftovers
    block_on_close = True

    peer: HttpPeer
    tls_context: ssl.SSLContext | None = None

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = super().get_request()
        if self.tls_context is not None:
            # The handshake runs on the handler thread (first read), not on the accept loop.
            sock = self.tls_context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, address

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that time out or reject the certificate hang up on purpose; keep stderr quiet.
        self.peer.errors += 1


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.0"  # one request per connection, so nothing idles at stop()
    timeout = 10  # a client that connects and sends nothing cannot hold stop() forever

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        received = Received(self.command, self.path, dict(self.headers.items()), body)
        peer = self.server.peer
        with peer.lock:
            peer.received.append(received)
        reply = peer.reply_for(received)
        if reply.delay and peer.stopping.wait(reply.delay):
            return
        if reply.reset:
            # SO_LINGER with a zero timeout makes close() send RST rather than FIN.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            self.connection.close()
            return
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(reply.body)

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _handle


def _builtin_reply(received: Received, base: str) -> Reply:
    path = urlsplit(received.path).path
    head, _, rest = path.lstrip("/").partition("/")
    if head == "status" and rest.isdigit():
        return Reply(int(rest), f"status {rest}".encode())
    if path == "/redirect":
        return Reply(302, headers={"Location": f"{base}/status/200"})
    if path == "/head-405":
        return Reply(405, headers={"Allow": "GET"}) if received.method == "HEAD" else Reply(200, b"ok")
    if head == "retry-after":
        return Reply(429, b"slow down", {"Retry-After": unquote(rest)})
    if head == "hang":
        return Reply(200, b"late", delay=float(rest))
    if path == "/echo":
        payload = {"method": received.method, "path": received.path, "headers": received.headers}
        return Reply(200, json.dumps(payload).encode(), {"Content-Type": "application/json"})
    if head == "bytes" and rest.isdigit():
        return Reply(200, b"x" * int(rest))
    return Reply(404, b"no such path")


class HttpPeer:
    def __init__(self, *, tls: TlsIdentity | None = None) -> None:
        self.tls = tls
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.received: list[Received] = []
        self.errors = 0
        self._scripts: dict[str, list[Reply]] = {}
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        assert self._server is not None, "start() the peer first"
        return self._server.server_address[1]

    def url(self, path: str = "/", *, host: str = "127.0.0.1") -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{host}:{self.port}{path}"

    def script(self, path: str, *replies: Reply) -> None:
        """Answer ``path`` (without query) with ``replies`` in order; the last one repeats."""
        assert replies
        with self.lock:
            self._scripts[path] = list(replies)

    def reply_for(self, received: Received) -> Reply:
        path = urlsplit(received.path).path
        with self.lock:
            queue = self._scripts.get(path)
            if queue:
                return queue.pop(0) if len(queue) > 1 else queue[0]
        return _builtin_reply(received, self.url().rstrip("/"))

    def start(self) -> HttpPeer:
        server = _Server(("127.0.0.1", 0), _Handler)
        server.peer = self
        if self.tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(self.tls.cert_path, self.tls.key_path)
            server.tls_context = context
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"http-peer-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()  # releases /hang handlers at once
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        if self.tls:
            self.tls.remove()

    def __enter__(self) -> HttpPeer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


class FakeDns:
    """Answers ``socket.getaddrinfo`` for chosen names; every other name goes to the real resolver.

    ``dns.answer("rebind.test", ["127.0.0.1"], ["169.254.169.254"])`` gives the first lookup
    the first list, the second lookup the second, and repeats the last; ``None`` in place of a
    list fails that lookup like an unknown name. Every lookup of a chosen name is recorded.
    """

    def __init__(self) -> None:
        self._answers: dict[str, list[list[str] | None]] = {}
        self.lookups: list[str] = []
        self._real = socket.getaddrinfo

    def install(self, monkeypatch: Any) -> FakeDns:
        monkeypatch.setattr(socket, "getaddrinfo", self.getaddrinfo)
        return self

    def answer(self, name: str, *answers: list[str] | None) -> None:
        assert answers
        self._answers[name.lower()] = list(answers)

    def getaddrinfo(self, host: Any, port: Any, family: int = 0, type: int = 0, proto: int = 0,
                    flags: int = 0) -> list[tuple[Any, ...]]:
        name = host.decode() if isinstance(host, bytes) else str(host)
        queue = self._answers.get(name.lower())
        if queue is None:
            return self._real(host, port, family, type, proto, flags)
        self.lookups.append(name)
        addresses = queue.pop(0) if len(queue) > 1 else queue[0]
        if addresses is None:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        results: list[tuple[Any, ...]] = []
        for address in addresses:
            if ":" in address:
                results.append((socket.AF_INET6, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, port, 0, 0)))
            else:
                results.append((socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, port)))
        return results


class ConnectRecorder:
    """Wraps ``socket.socket.connect``: records every destination and refuses any that is not loopback.

    Installed in tests of the egress guard so that a broken guard fails the test instead of
    reaching a real metadata or internet address.
    """

    def __init__(self) -> None:
        self.destinations: list[str] = []
        self._real = socket.socket.connect

    def install(self, monkeypatch: Any) -> ConnectRecorder:
        recorder = self

        def connect(sock: socket.socket, address: Any) -> None:  # a function, so it binds as a method
            recorder.connect(sock, address)

        monkeypatch.setattr(socket.socket, "connect", connect)
        return self

    def connect(self, sock: socket.socket, address: Any) -> None:
        host = address[0] if isinstance(address, tuple) else str(address)
        self.destinations.append(host)
        if host not in ("127.0.0.1", "::1"):
            raise AssertionError(f"test code tried to connect to {host}; only loopback is allowed")
        self._real(sock, address)
