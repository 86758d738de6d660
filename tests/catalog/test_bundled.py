from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from django.core import checks

from catalog import entries
from catalog.entries import CatalogInvalid, load_catalog


def _document() -> dict[str, Any]:
    return json.loads(entries.BUNDLED_PATH.read_text())


def _write(tmp_path: Path, document: Any) -> Path:
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps(document) if not isinstance(document, str) else document)
    return path


def test_bundled_catalog_has_the_eight_curated_entries() -> None:
    catalog = load_catalog()
    assert [e.name for e in catalog.values()] == [
        "GitHub", "Slack", "Filesystem", "PostgreSQL", "SQLite", "Brave Search", "Puppeteer", "Memory"]
    needs = {e.id: (e.connection_type, e.connection_dialect) for e in catalog.values()}
    assert needs == {"github": ("github", None), "slack": ("slack", None), "filesystem": (None, None),
                     "postgres": ("database", "postgres"), "sqlite": ("database", "sqlite"),
                     "brave-search": ("generic_http", None), "puppeteer": (None, None), "memory": (None, None)}
    assert catalog["github"].env == {"GITHUB_PERSONAL_ACCESS_TOKEN": "${connection.token}"}
    assert set(catalog["slack"].env) == {"SLACK_BOT_TOKEN", "SLACK_TEAM_ID"}
    assert catalog["brave-search"].env == {"BRAVE_API_KEY": "${connection.api_key}"}
    assert catalog["sqlite"].args == ("--db-path", "${connection.database}")


def test_every_launch_recipe_pins_its_package_version() -> None:
    for entry in load_catalog().values():
        assert any(f"{entry.package['version']}" in arg for arg in entry.launch_args), entry.id
        assert entry.transport == "stdio"


def test_puppeteer_never_downloads_a_browser() -> None:
    env = load_catalog()["puppeteer"].env
    assert env["PUPPETEER_SKIP_DOWNLOAD"] == "true"
    assert env["PUPPETEER_EXECUTABLE_PATH"] == "${setting.chromium_path}"


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda d: d["entries"][0].pop("name"), "'name' is a required property"),
    (lambda d: d["entries"][0].update(transport="carrier-pigeon"), "transport"),
    (lambda d: d["entries"][0]["connection"].update(type="fax"), "unknown connection type 'fax'"),
    (lambda d: d["entries"][3]["connection"].update(dialect="oracle"), "'oracle' is not a dialect"),
    (lambda d: d["entries"][0]["launch"].update(args=["-y", "@modelcontextprotocol/server-github"]),
     "must pin @modelcontextprotocol/server-github"),
    (lambda d: d["entries"][2].update(args=["${option.folders}"]), "unknown option 'folders'"),
    (lambda d: d["entries"][0]["env"].update(X="${connection.pasword}"), "no field 'pasword'"),
    (lambda d: d["entries"].append(dict(d["entries"][0])), "duplicate id 'github'"),
])
def test_broken_catalog_is_refused_naming_the_problem(tmp_path: Path, mutate: Any, message: str) -> None:
    document = _document()
    mutate(document)
    with pytest.raises(CatalogInvalid, match="entries") as caught:
        load_catalog(_write(tmp_path, document))
    assert message in str(caught.value)


def test_unparseable_catalog_names_line_and_column(tmp_path: Path) -> None:
    with pytest.raises(CatalogInvalid, match=r"not valid JSON at line 1, column 2"):
        load_catalog(_write(tmp_path, "{oops"))


def test_broken_catalog_fails_the_startup_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    document = _document()
    document["entries"][0].pop("launch")
    monkeypatch.setattr(entries, "BUNDLED_PATH", _write(tmp_path, document))
    errors = [m for m in checks.run_checks() if m.id == "catalog.E001"]
    assert len(errors) == 1
    assert "'launch' is a required property" in errors[0].msg


def test_valid_catalog_passes_the_startup_check() -> None:
    assert not [m for m in checks.run_checks() if m.id == "catalog.E001"]
