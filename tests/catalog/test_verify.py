"""Verify against the real Memory and Filesystem servers (npm-pinned in tests/peers, launched with node)."""
from __future__ import annotations

from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.core.management import CommandError, call_command

from catalog import services
from catalog.models import VerifyJob

pytestmark = pytest.mark.django_db

BASE = "/api/v1/integrations/mcp"


@pytest.fixture
def offline(mcp_settings: Any, node_modules: Path, tmp_path: Path) -> Path:
    root = tmp_path / "files"
    (root / "docs").mkdir(parents=True)
    mcp_settings(mcp_catalog={"node_modules_dir": str(node_modules), "allowed_roots": [str(tmp_path)],
                              "verify_timeout_seconds": 60})
    return root


def test_verify_memory_lists_its_tools_through_a_worker_job(operator_client: Any, offline: Path, tmp_path: Path,
                                                            django_capture_on_commit_callbacks: Any) -> None:
    services.installation_install(entry_id="memory", options={"storage_file": str(tmp_path / "graph.jsonl")})
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = operator_client.post(f"{BASE}/catalog/install/memory/verify")
    assert response.status_code == 202
    # The web request only queued it: the launch happens in the task, after commit.
    assert response.json()["status"] == "queued"
    job_url = response["Location"]
    assert operator_client.get(job_url).json()["status"] == "queued"
    for callback in callbacks:
        callback()  # the eager task, as a worker would run it
    job = operator_client.get(job_url).json()
    assert job["status"] == "succeeded", job
    names = {t["name"] for t in job["tools"]}
    assert {"create_entities", "read_graph", "search_nodes"} <= names


def test_verify_filesystem_lists_its_tools(offline: Path) -> None:
    services.installation_install(entry_id="filesystem", options={"directories": [str(offline / "docs")]})
    out = StringIO()
    call_command("mcp_verify", "filesystem", stdout=out)
    assert "filesystem: OK" in out.getvalue()
    assert "read_text_file" in out.getvalue() or "read_file" in out.getvalue()


def test_verify_reports_the_servers_own_failure(offline: Path) -> None:
    docs = offline / "docs"
    services.installation_install(entry_id="filesystem", options={"directories": [str(docs)]})
    docs.rmdir()  # gone after install: the server refuses to start
    result = services.installation_verify(entry_id="filesystem")
    assert not result.ok
    assert "the server said" in result.error


def test_verify_times_out_clearly(mcp_settings: Any, tmp_path: Path) -> None:
    script = tmp_path / "silent.sh"
    script.write_text("#!/bin/sh\nsleep 30\n")
    script.chmod(0o755)
    mcp_settings(servers=[{"name": "memory", "command": str(script)}], mcp_catalog={"verify_timeout_seconds": 1})
    services.installation_install(entry_id="memory")
    result = services.installation_verify(entry_id="memory")
    assert not result.ok and result.error == "no answer within 1 seconds"


def test_verify_missing_command_is_a_clear_failure(mcp_settings: Any) -> None:
    mcp_settings(mcp_catalog={"verify_timeout_seconds": 5})
    services.installation_install(entry_id="memory")
    # Default recipe is npx; point the YAML at a command that does not exist instead (no network).
    mcp_settings(servers=[{"name": "memory", "command": "/nonexistent/mcp-server"}],
                 mcp_catalog={"verify_timeout_seconds": 5})
    with pytest.raises(CommandError, match="command not found: /nonexistent/mcp-server"):
        call_command("mcp_verify", "memory", stdout=StringIO())


def test_verify_failure_never_shows_a_secret(mcp_settings: Any, github: Any, tmp_path: Path) -> None:
    script = tmp_path / "leaky.sh"
    script.write_text('#!/bin/sh\necho "bad token $GITHUB_PERSONAL_ACCESS_TOKEN" >&2\nexit 1\n')
    script.chmod(0o755)
    services.installation_install(entry_id="github", connection_name="gh")
    from catalog import launch

    real = launch.launch_recipe
    launch_recipe = lambda entry, config: (str(script), [])  # noqa: E731
    try:
        launch.launch_recipe = launch_recipe
        import catalog.launch as module

        module.launch_recipe = launch_recipe
        result = services.installation_verify(entry_id="github")
    finally:
        launch.launch_recipe = real
    assert not result.ok
    assert "ghp_secret_value_123" not in result.error
    assert "[redacted]" in result.error


def test_verify_of_what_is_not_installed_is_404(operator_client: Any) -> None:
    response = operator_client.post(f"{BASE}/catalog/install/memory/verify")
    assert response.status_code == 404 and response.json()["code"] == "not_installed"
    with pytest.raises(CommandError, match="'memory' is not installed"):
        call_command("mcp_verify", "memory", stdout=StringIO())


def test_verify_needs_its_own_permission(user_client: Any, user: Any, offline: Path,
                                         django_capture_on_commit_callbacks: Any) -> None:
    services.installation_install(entry_id="memory")
    assert user_client.post(f"{BASE}/catalog/install/memory/verify").status_code == 403
    user.user_permissions.add(Permission.objects.get(codename="verify_installation"))
    with django_capture_on_commit_callbacks(execute=True):
        response = user_client.post(f"{BASE}/catalog/install/memory/verify")
    assert response.status_code == 202
    assert user_client.get(response["Location"]).json()["status"] == "succeeded"


def test_verify_job_runs_once_even_if_delivered_twice(offline: Path) -> None:
    services.installation_install(entry_id="memory")
    job = VerifyJob.objects.create(entry_id="memory")
    assert services.verify_job_run(job_id=str(job.pk)).status == VerifyJob.Status.SUCCEEDED
    assert services.verify_job_run(job_id=str(job.pk)) is None


def test_unknown_verify_job_is_404(operator_client: Any) -> None:
    response = operator_client.get(f"{BASE}/verify-jobs/00000000-0000-0000-0000-000000000000")
    assert response.status_code == 404
