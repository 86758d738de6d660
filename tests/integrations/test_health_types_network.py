"""The smtp and database checks against real peers: aiosmtpd, and this machine's PostgreSQL and MariaDB."""
from __future__ import annotations

import os
import socket
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from integrations.types import database, smtp
from integrations.types.probing import HEALTHY, UNHEALTHY, ProbeContext
from tests.peers.http_peer import FakeDns, TlsIdentity
from tests.peers.smtp_peer import SmtpPeer

PASSWORD = "smtp-pw-Zq81"


def context(values: dict[str, Any], timeout: float = 5.0) -> ProbeContext:
    return ProbeContext(connection_id=1, name="peer", values=values, timeout=timeout)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed again when the block ends: nothing listens


@pytest.fixture
def tls_peer(monkeypatch: pytest.MonkeyPatch) -> Any:
    identity = TlsIdentity.create("localhost")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(identity.ca_path))
    with SmtpPeer(tls=identity, users={"alice": PASSWORD}) as peer:
        yield peer


# --- smtp ----------------------------------------------------------------------------------------

def test_smtp_starttls_and_auth_succeed_healthy(tls_peer: SmtpPeer) -> None:
    result = smtp.probe(context({"host": "localhost", "port": tls_peer.port, "use_tls": True,
                                 "username": "alice", "password": PASSWORD}))
    assert result.status == HEALTHY, result.detail
    assert "STARTTLS" in result.detail and "AUTH" in result.detail
    assert tls_peer.commands[:2] == ["EHLO", "STARTTLS"]
    assert tls_peer.commands[-1] == "QUIT"
    assert tls_peer.logins == [("alice", True)]


def test_smtp_wrong_password_unhealthy_without_the_password(tls_peer: SmtpPeer) -> None:
    result = smtp.probe(context({"host": "localhost", "port": tls_peer.port, "use_tls": True,
                                 "username": "alice", "password": "not-the-one-77"}))
    assert result.status == UNHEALTHY
    assert "AUTH rejected (535)" in result.detail
    assert "not-the-one-77" not in result.detail
    assert tls_peer.logins == [("alice", False)]


def test_smtp_certificate_for_another_name_unhealthy(tls_peer: SmtpPeer) -> None:
    # The certificate names localhost; connecting by address must fail verification.
    result = smtp.probe(context({"host": "127.0.0.1", "port": tls_peer.port, "use_tls": True}))
    assert result.status == UNHEALTHY
    assert "TLS failure" in result.detail


def test_smtp_plain_server_with_use_tls_unhealthy() -> None:
    with SmtpPeer() as peer:
        result = smtp.probe(context({"host": "localhost", "port": peer.port, "use_tls": True}))
    assert result.status == UNHEALTHY
    assert "does not offer STARTTLS" in result.detail


def test_smtp_plain_server_without_tls_healthy() -> None:
    with SmtpPeer(users={"bob": PASSWORD}) as peer:
        result = smtp.probe(context({"host": "localhost", "port": peer.port, "use_tls": False,
                                     "username": "bob", "password": PASSWORD}))
        assert result.status == HEALTHY, result.detail
        assert peer.commands == ["EHLO", "AUTH", "QUIT"]


def test_smtp_refused_port_unhealthy() -> None:
    result = smtp.probe(context({"host": "127.0.0.1", "port": closed_port(), "use_tls": False}))
    assert result.status == UNHEALTHY
    assert "connect failed" in result.detail


def test_smtp_metadata_address_refused_before_connecting(monkeypatch: pytest.MonkeyPatch) -> None:
    dns = FakeDns().install(monkeypatch)
    dns.answer("mail.rebind.test", ["169.254.169.254"])
    result = smtp.probe(context({"host": "mail.rebind.test", "port": 25, "use_tls": False}))
    assert result.status == UNHEALTHY
    assert "refused" in result.detail and "blocked_networks" in result.detail
    assert dns.lookups == ["mail.rebind.test"]  # resolved once


def test_smtp_connects_to_the_checked_address_only(monkeypatch: pytest.MonkeyPatch) -> None:
    # Rebinding: a second lookup would answer the metadata address; there must be no second lookup.
    with SmtpPeer() as peer:
        dns = FakeDns().install(monkeypatch)
        dns.answer("mail.flip.test", ["127.0.0.1"], ["169.254.169.254"])
        result = smtp.probe(context({"host": "mail.flip.test", "port": peer.port, "use_tls": False}))
    assert result.status == HEALTHY, result.detail
    assert dns.lookups == ["mail.flip.test"]


# --- database ----------------------------------------------------------------------------------------

def test_postgres_select_one_healthy() -> None:
    result = database.probe(context({"dialect": "postgres", "host": "127.0.0.1", "port": 5432,
                                     "username": "postgres", "database": "postgres"}))
    assert result.status == HEALTHY, result.detail
    assert result.detail == "postgres://127.0.0.1:5432: SELECT 1 ok"


def test_postgres_unknown_role_unhealthy() -> None:
    # This server trusts local connections (any password passes), so the refused login is a role
    # that does not exist; the message must not carry the password given.
    result = database.probe(context({"dialect": "postgres", "host": "127.0.0.1", "port": 5432,
                                     "username": "no_such_role_h6", "password": "pg-secret-19",
                                     "database": "postgres"}))
    assert result.status == UNHEALTHY
    assert "no_such_role_h6" in result.detail
    assert "pg-secret-19" not in result.detail


def test_postgres_unreachable_port_unhealthy() -> None:
    result = database.probe(context({"dialect": "postgres", "host": "127.0.0.1", "port": closed_port(),
                                     "username": "postgres", "database": "postgres"}, timeout=2))
    assert result.status == UNHEALTHY
    assert "OperationalError" in result.detail


@pytest.mark.parametrize("dialect", ["mariadb", "mysql"])
def test_mariadb_select_one_healthy(dialect: str) -> None:
    result = database.probe(context({"dialect": dialect, "host": "127.0.0.1", "port": 3306, "username": "root",
                                     "password": "", "database": "test"}))
    assert result.status == HEALTHY, result.detail


def test_mariadb_wrong_password_unhealthy() -> None:
    result = database.probe(context({"dialect": "mariadb", "host": "127.0.0.1", "port": 3306, "username": "root",
                                     "password": "wrong-maria-42", "database": "test"}))
    assert result.status == UNHEALTHY
    assert "Access denied" in result.detail
    assert "wrong-maria-42" not in result.detail


def test_mariadb_unreachable_port_unhealthy() -> None:
    result = database.probe(context({"dialect": "mariadb", "host": "127.0.0.1", "port": closed_port(),
                                     "username": "root", "database": "test"}, timeout=2))
    assert result.status == UNHEALTHY
    assert "OperationalError" in result.detail


def test_database_host_resolved_once_and_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    dns = FakeDns().install(monkeypatch)
    dns.answer("db.rebind.test", ["169.254.169.254"])
    result = database.probe(context({"dialect": "postgres", "host": "db.rebind.test", "port": 5432,
                                     "username": "postgres", "database": "postgres"}))
    assert result.status == UNHEALTHY
    assert "blocked_networks" in result.detail
    assert dns.lookups == ["db.rebind.test"]


def test_database_driver_gets_the_checked_address(monkeypatch: pytest.MonkeyPatch) -> None:
    dns = FakeDns().install(monkeypatch)
    dns.answer("db.flip.test", ["127.0.0.1"], ["169.254.169.254"])
    result = database.probe(context({"dialect": "mariadb", "host": "db.flip.test", "port": 3306,
                                     "username": "root", "database": "test"}))
    assert result.status == HEALTHY, result.detail
    assert dns.lookups == ["db.flip.test"]


def test_sqlite_file_healthy_and_missing_file_not_created(tmp_path: Path) -> None:
    path = tmp_path / "app.sqlite3"
    sqlite3.connect(path).close()
    assert database.probe(context({"dialect": "sqlite", "database": str(path)})).status == HEALTHY
    missing = tmp_path / "missing.sqlite3"
    result = database.probe(context({"dialect": "sqlite", "database": str(missing)}))
    assert result.status == UNHEALTHY
    assert not os.path.exists(missing)
