"""Paths chosen at install time stay inside allowed roots (issue 12, section 5)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings

from catalog import services
from catalog.install import merge_installed_servers
from integrations import health
from integrations import services as connection_services
from integrations.models import Connection
from integrations.types import database
from integrations.types.probing import ProbeContext
from synthorg.errors import ValidationFailed

pytestmark = pytest.mark.django_db


@pytest.fixture
def roots(mcp_settings: Any, tmp_path: Path) -> Path:
    """One allowed root, tmp_path/allowed, beside a private directory outside it."""
    root = tmp_path / "allowed"
    root.mkdir()
    (tmp_path / "private").mkdir()
    mcp_settings(mcp_catalog={"allowed_roots": [str(root)]})
    return root


def install_refused(entry_id: str, **kwargs: Any) -> dict[str, list[str]]:
    with pytest.raises(ValidationFailed) as caught:
        services.installation_install(entry_id=entry_id, **kwargs)
    assert caught.value.errors
    return caught.value.errors


def test_memory_storage_file_in_ssh_authorized_keys_is_refused(roots: Path) -> None:
    for path in (os.path.expanduser("~/.ssh/authorized_keys"), "~/.ssh/authorized_keys"):
        errors = install_refused("memory", options={"storage_file": path})
        assert errors["options.storage_file"][0] in {
            "must be an absolute path",
            "is not under an allowed root (integrations.mcp_catalog.allowed_roots; symlinks and '..' resolved)"}


def test_memory_storage_file_inside_the_root_is_accepted(roots: Path) -> None:
    services.installation_install(entry_id="memory", options={"storage_file": str(roots / "graph.jsonl")})
    server = next(s for s in merge_installed_servers().servers if s.name == "memory")
    assert server.env["MEMORY_FILE_PATH"] == str(roots / "graph.jsonl")


def test_dot_dot_out_of_the_root_is_refused(roots: Path) -> None:
    errors = install_refused("memory", options={"storage_file": f"{roots}/../private/graph.jsonl"})
    assert "not under an allowed root" in errors["options.storage_file"][0]
    errors = install_refused("filesystem", options={"directories": [f"{roots}/../private"]})
    assert "not under an allowed root" in errors["options.directories"][0]


def test_symlink_escape_is_refused(roots: Path, tmp_path: Path) -> None:
    (roots / "escape").symlink_to(tmp_path / "private")
    (roots / "graph.jsonl").symlink_to(tmp_path / "private" / "authorized_keys")  # dangling is no excuse
    for path in (roots / "escape" / "graph.jsonl", roots / "graph.jsonl"):
        errors = install_refused("memory", options={"storage_file": str(path)})
        assert "not under an allowed root" in errors["options.storage_file"][0], path
    errors = install_refused("filesystem", options={"directories": [str(roots / "escape")]})
    assert "not under an allowed root" in errors["options.directories"][0]


def test_the_services_own_files_are_refused_even_under_a_wide_root(mcp_settings: Any, tmp_path: Path) -> None:
    var = Path(os.path.realpath(django_settings.VAR_DIR))
    # A root that holds the var directory (the test run's var is under the temp directory).
    mcp_settings(mcp_catalog={"allowed_roots": [str(var.parent)]})
    config_file = Path(django_settings.SYNTHORG_CONFIG_FILE)  # mcp_settings wrote it
    for path in (var / "synthorg.sqlite3", var / "secret_key", var / "broker" / "x", config_file):
        errors = install_refused("memory", options={"storage_file": str(path)})
        assert "service's own files" in errors["options.storage_file"][0], path
    # A directory that holds the var directory would expose it whole.
    errors = install_refused("filesystem", options={"directories": [str(var.parent)]})
    assert "service's own files" in errors["options.directories"][0]
    errors = install_refused("filesystem", options={"directories": [str(var)]})
    assert "service's own files" in errors["options.directories"][0]


def test_the_default_root_is_var_mcp(mcp_settings: Any) -> None:
    from synthorg.config import MCPCatalogConfig

    assert MCPCatalogConfig().allowed_roots == ["mcp"]
    # tests/settings.py widens the roots for the whole run; this test puts the default back.
    mcp_settings(mcp_catalog={"allowed_roots": ["mcp"]})
    var = Path(os.path.realpath(django_settings.VAR_DIR))
    (var / "mcp").mkdir(exist_ok=True)
    services.installation_install(entry_id="memory", options={"storage_file": str(var / "mcp" / "graph.jsonl")})
    errors = install_refused("memory", options={"storage_file": str(var / "synthorg.sqlite3")})
    assert "not under an allowed root" in errors["options.storage_file"][0]


def test_no_root_allows_no_path(mcp_settings: Any, tmp_path: Path) -> None:
    mcp_settings(mcp_catalog={"allowed_roots": []})
    errors = install_refused("memory", options={"storage_file": str(tmp_path / "g.jsonl")})
    assert "names at least one root" in errors["options.storage_file"][0]


def test_a_path_that_escapes_after_install_is_not_launched(roots: Path, tmp_path: Path) -> None:
    (roots / "data").mkdir()
    services.installation_install(entry_id="memory", options={"storage_file": str(roots / "data" / "g.jsonl")})
    (roots / "data").rmdir()
    (roots / "data").symlink_to(tmp_path / "private")
    result = merge_installed_servers()
    assert "memory" not in {s.name for s in result.servers}
    assert "not under an allowed root" in next(s.reason for s in result.skipped if s.entry_id == "memory")


# --- the database type's sqlite dialect -------------------------------------------------------

def sqlite_credentials(path: str) -> dict[str, Any]:
    return {"dialect": "sqlite", "database": path}


def test_sqlite_connection_on_the_service_database_is_refused(mcp_settings: Any) -> None:
    var = Path(os.path.realpath(django_settings.VAR_DIR))
    mcp_settings(mcp_catalog={"allowed_roots": [str(var.parent)]})
    with pytest.raises(ValidationFailed) as caught:
        connection_services.connection_create(name="lite", connection_type="database",
                                              credentials=sqlite_credentials(str(var / "synthorg.sqlite3")))
    assert "service's own files" in caught.value.errors["credentials.database"][0]


def test_sqlite_connection_outside_the_roots_is_refused(roots: Path) -> None:
    for path in ("/etc/shadow", "relative.db", f"{roots}/../private/app.db"):
        with pytest.raises(ValidationFailed) as caught:
            connection_services.connection_create(name="lite", connection_type="database",
                                                  credentials=sqlite_credentials(path))
        assert "credentials.database" in caught.value.errors, path
    connection_services.connection_create(name="lite", connection_type="database",
                                          credentials=sqlite_credentials(str(roots / "app.db")))


def probe_detail(path: str) -> str:
    context = ProbeContext(connection_id=1, name="lite", values={"dialect": "sqlite", "database": path}, timeout=2)
    return database.probe(context).detail


def test_sqlite_probe_does_not_tell_whether_a_file_outside_exists(roots: Path, tmp_path: Path) -> None:
    existing = tmp_path / "private" / "secret.db"
    existing.write_bytes(b"not a database")
    missing = tmp_path / "private" / "missing.db"
    assert probe_detail(str(existing)) == probe_detail(str(missing))
    assert probe_detail("/etc/shadow") == probe_detail("/etc/no-such-file-here")
    assert "not opened" in probe_detail("/etc/shadow")


def test_a_stored_sqlite_path_outside_the_roots_is_not_opened_by_the_check(roots: Path) -> None:
    connection = connection_services.connection_create(name="lite", connection_type="database",
                                                       credentials=sqlite_credentials(str(roots / "app.db")))
    # Stored before the roots narrowed (or written to the database directly).
    Connection.objects.filter(pk=connection.pk).update(config={"dialect": "sqlite", "database": "/etc/shadow"})
    outcome = health.connection_health_check(name="lite", force=True)
    assert "not opened" in outcome.result.detail


def test_sqlite_install_refuses_a_connection_stored_outside_the_roots(roots: Path) -> None:
    connection = connection_services.connection_create(name="lite", connection_type="database",
                                                       credentials=sqlite_credentials(str(roots / "app.db")))
    services.installation_install(entry_id="sqlite", connection_name="lite")
    Connection.objects.filter(pk=connection.pk).update(
        config={"dialect": "sqlite", "database": str(Path(django_settings.VAR_DIR) / "synthorg.sqlite3")})
    services.installation_uninstall(entry_id="sqlite")
    errors = install_refused("sqlite", connection_name="lite")
    assert "database file" in errors["connection_name"][0]
    # And an installation made before is not launched.
    Connection.objects.filter(pk=connection.pk).update(config={"dialect": "sqlite", "database": str(roots / "a.db")})
    services.installation_install(entry_id="sqlite", connection_name="lite")
    Connection.objects.filter(pk=connection.pk).update(config={"dialect": "sqlite", "database": "/etc/shadow"})
    assert "sqlite" not in {s.name for s in merge_installed_servers().servers}
