from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Permission

from catalog.models import Installation
from synthorg.models import AuditEvent

pytestmark = pytest.mark.django_db

BASE = "/api/v1/integrations/mcp"


def _install(client: Any, **body: Any) -> Any:
    return client.post(f"{BASE}/catalog/install", body, format="json")


def test_catalog_lists_every_entry_with_installed_flag(operator_client: Any) -> None:
    assert _install(operator_client, entry_id="memory").status_code == 200
    response = operator_client.get(f"{BASE}/catalog")
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 8
    installed = {e["id"]: e["installed"] for e in body["results"]}
    assert installed["memory"] is True
    assert installed["github"] is False


def test_catalog_list_paginates(operator_client: Any) -> None:
    body = operator_client.get(f"{BASE}/catalog?limit=3&offset=3").json()
    assert body["count"] == 8 and len(body["results"]) == 3 and body["next"] and body["previous"]


def test_catalog_needs_authentication(api_client: Any) -> None:
    assert api_client.get(f"{BASE}/catalog").status_code == 401


def test_search_ranks_name_matches_first_case_insensitively(user_client: Any) -> None:
    body = user_client.get(f"{BASE}/catalog/search", {"q": "SQL"}).json()
    ids = [e["id"] for e in body["results"]]
    # Both names contain "sql"; a name starting with the term ranks above one merely containing it.
    assert set(ids) == {"sqlite", "postgres"}
    assert ids[0] == "sqlite"


def test_search_matches_tags_capabilities_and_description(user_client: Any) -> None:
    assert [e["id"] for e in user_client.get(f"{BASE}/catalog/search", {"q": "knowledge graph"}).json()["results"]] \
        == ["memory"]
    assert "postgres" in [e["id"] for e in user_client.get(f"{BASE}/catalog/search",
                                                            {"q": "resources"}).json()["results"]]
    assert [e["id"] for e in user_client.get(f"{BASE}/catalog/search", {"q": "browser"}).json()["results"]] \
        == ["puppeteer"]


def test_search_with_no_match_is_empty_and_without_q_is_400(user_client: Any) -> None:
    assert user_client.get(f"{BASE}/catalog/search", {"q": "zzzz"}).json()["count"] == 0
    assert user_client.get(f"{BASE}/catalog/search").status_code == 400


def test_entry_detail_and_unknown_entry_404(user_client: Any) -> None:
    body = user_client.get(f"{BASE}/catalog/postgres").json()
    assert body["connection"] == {"type": "database", "dialect": "postgres"}
    assert body["installed"] is False
    response = user_client.get(f"{BASE}/catalog/nope")
    assert response.status_code == 404 and response.json()["code"] == "catalog_entry_not_found"


def test_install_is_idempotent_and_audited_once(operator_client: Any, github: Any) -> None:
    first = _install(operator_client, entry_id="github", connection_name="gh")
    second = _install(operator_client, entry_id="github", connection_name="gh")
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json()
    assert first.json()["connection_name"] == "gh"
    assert Installation.objects.count() == 1
    assert AuditEvent.objects.filter(action="mcp.install", target="github").count() == 1


def test_install_with_different_arguments_updates(operator_client: Any, tmp_path: Path) -> None:
    _install(operator_client, entry_id="memory")
    response = _install(operator_client, entry_id="memory", options={"storage_file": str(tmp_path / "g.json")})
    assert response.status_code == 200
    assert Installation.objects.get(entry_id="memory").options == {"storage_file": str(tmp_path / "g.json")}
    assert AuditEvent.objects.filter(action="mcp.install", target="memory").count() == 2


def test_install_unknown_entry_404(operator_client: Any) -> None:
    response = _install(operator_client, entry_id="nope")
    assert response.status_code == 404


@pytest.mark.parametrize(("body", "problem"), [
    ({"entry_id": "github"}, "is required: GitHub needs a github connection"),
    ({"entry_id": "github", "connection_name": "missing"}, "no connection named 'missing'"),
    ({"entry_id": "github", "connection_name": "pg"}, "'pg' is a database connection; GitHub needs github"),
    ({"entry_id": "sqlite", "connection_name": "pg"}, "'pg' has dialect 'postgres'; SQLite needs sqlite"),
    ({"entry_id": "memory", "connection_name": "pg"}, "Memory needs no connection"),
    ({"entry_id": "slack", "connection_name": "missing"}, "no connection named 'missing'"),
])
def test_install_refuses_wrong_connection_with_422(operator_client: Any, pg: Any, body: dict[str, Any],
                                                   problem: str) -> None:
    response = _install(operator_client, **body)
    assert response.status_code == 422
    assert problem in str(response.json()["errors"]["connection_name"])
    assert not Installation.objects.exists()


def test_install_options_are_validated(operator_client: Any, make_connection: Any) -> None:
    make_connection("team", "slack", token="xoxb-1")
    response = _install(operator_client, entry_id="slack", connection_name="team")
    assert response.json()["errors"] == {"options.team_id": ["is required"]}
    response = _install(operator_client, entry_id="slack", connection_name="team", options={"team_id": "nope"})
    assert "must match" in response.json()["errors"]["options.team_id"][0]
    response = _install(operator_client, entry_id="memory", options={"colour": "red"})
    assert response.status_code == 422 and "unknown option" in response.json()["errors"]["options.colour"][0]
    response = _install(operator_client, entry_id="memory", options={"storage_file": "relative.json"})
    assert response.json()["errors"]["options.storage_file"] == ["must be an absolute path"]
    assert _install(operator_client, entry_id="slack", connection_name="team",
                    options={"team_id": "T0123ABC"}).status_code == 200


def test_filesystem_directories_must_exist_be_absolute_and_under_allowed_roots(
        operator_client: Any, mcp_settings: Any, tmp_path: Path) -> None:
    root = tmp_path / "shared"
    inside = root / "docs"
    inside.mkdir(parents=True)
    outside = tmp_path / "private"
    outside.mkdir()
    (root / "escape").symlink_to(outside)
    mcp_settings(mcp_catalog={"allowed_roots": []})
    response = _install(operator_client, entry_id="filesystem", options={"directories": [str(inside)]})
    assert "allowed_roots" in response.json()["errors"]["options.directories"][0]
    mcp_settings(mcp_catalog={"allowed_roots": [str(root)]})
    for bad, rule in ((["docs"], "must be an absolute path"), ([str(root / "none")], "does not exist"),
                      ([str(outside)], "is not under an allowed root"),
                      ([str(root / "escape")], "is not under an allowed root"), ([], "non-empty list")):
        response = _install(operator_client, entry_id="filesystem", options={"directories": bad})
        assert response.status_code == 422, bad
        assert rule in response.json()["errors"]["options.directories"][0], bad
    response = _install(operator_client, entry_id="filesystem", options={"directories": [str(inside)]})
    assert response.status_code == 200


def test_install_needs_staff_or_add_permission(user_client: Any, user: Any) -> None:
    assert _install(user_client, entry_id="memory").status_code == 403
    user.user_permissions.add(Permission.objects.get(codename="add_installation"))
    assert _install(user_client, entry_id="memory").status_code == 200


def test_uninstall_is_idempotent_and_audited(operator_client: Any) -> None:
    _install(operator_client, entry_id="memory")
    assert operator_client.delete(f"{BASE}/catalog/install/memory").status_code == 204
    assert operator_client.delete(f"{BASE}/catalog/install/memory").status_code == 204
    assert operator_client.delete(f"{BASE}/catalog/install/never-heard-of-it").status_code == 204
    assert not Installation.objects.exists()
    assert AuditEvent.objects.filter(action="mcp.uninstall").count() == 1


def test_uninstall_needs_permission(user_client: Any) -> None:
    assert user_client.delete(f"{BASE}/catalog/install/memory").status_code == 403


def test_installed_lists_installations_without_secrets(operator_client: Any, github: Any) -> None:
    _install(operator_client, entry_id="github", connection_name="gh")
    _install(operator_client, entry_id="memory")
    response = operator_client.get(f"{BASE}/installed")
    assert [i["entry_id"] for i in response.json()["results"]] == ["github", "memory"]
    assert "ghp_secret_value_123" not in response.content.decode()


def test_installed_list_query_count_is_constant(operator_client: Any, make_connection: Any,
                                                django_assert_max_num_queries: Any) -> None:
    for name in ("a", "b", "c"):
        make_connection(name, "github", token="t")
    _install(operator_client, entry_id="github", connection_name="a")
    _install(operator_client, entry_id="memory")
    # + the user's and their groups' permissions (2), whatever the number of installations
    with django_assert_max_num_queries(6):
        operator_client.get(f"{BASE}/installed")


def test_config_shows_placeholders_never_secrets(operator_client: Any, github: Any) -> None:
    _install(operator_client, entry_id="github", connection_name="gh")
    response = operator_client.get(f"{BASE}/config")
    assert response.status_code == 200
    server = response.json()["mcpServers"]["github"]
    assert server["env"] == {"GITHUB_PERSONAL_ACCESS_TOKEN": "<secret:gh.token>"}
    assert "ghp_secret_value_123" not in response.content.decode()


@pytest.mark.parametrize(("method", "path"), [
    ("get", "/catalog"), ("get", "/catalog/search?q=x"), ("get", "/catalog/memory"),
    ("post", "/catalog/install"), ("delete", "/catalog/install/memory"), ("get", "/installed"),
    ("get", "/config"), ("post", "/catalog/install/memory/verify"),
])
def test_disabled_catalog_answers_404_naming_the_setting(operator_client: Any, mcp_settings: Any,
                                                        method: str, path: str) -> None:
    mcp_settings(mcp_catalog={"enabled": False})
    response = getattr(operator_client, method)(f"{BASE}{path}", {"entry_id": "memory"} if method == "post" else None,
                                             format="json")
    assert response.status_code == 404
    assert response.json()["code"] == "mcp_catalog_disabled"
    assert "integrations.mcp_catalog.enabled" in response.json()["detail"]
    assert not Installation.objects.exists()


def test_deleting_a_connection_used_by_an_installation_is_refused_unless_forced(operator_client: Any,
                                                                                github: Any) -> None:
    _install(operator_client, entry_id="github", connection_name="gh")
    response = operator_client.delete("/api/v1/connections/gh")
    assert response.status_code == 409
    assert "MCP installations: github" in response.json()["detail"]
    assert Installation.objects.filter(entry_id="github").exists()
    assert operator_client.delete("/api/v1/connections/gh?force=true").status_code == 204
    assert not Installation.objects.exists()
    assert AuditEvent.objects.filter(action="mcp.uninstall", target="github").exists()


def test_database_protects_a_connection_an_installation_uses(operator_client: Any, github: Any) -> None:
    from django.db import IntegrityError, transaction
    from django.db.models import ProtectedError

    _install(operator_client, entry_id="github", connection_name="gh")
    with pytest.raises((ProtectedError, IntegrityError)), transaction.atomic():
        github.delete()
