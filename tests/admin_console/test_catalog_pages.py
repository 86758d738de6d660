"""The catalog pages: cards, search, the install form with its connection picker, verify jobs."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.urls import reverse
from django.utils import timezone

from catalog import services as catalog_services
from catalog.models import Installation, VerifyJob
from integrations import services as connection_services
from integrations.models import Connection
from tests.admin_console.conftest import CANARY_SIGNING, CANARY_TOKEN, ConsoleClient

pytestmark = pytest.mark.django_db

BROWSE = reverse("admin:catalog_browse")


def entry_url(entry_id: str) -> str:
    return reverse("admin:catalog_entry", args=[entry_id])


def test_browse_shows_a_card_per_entry_with_installed_state(root_console: ConsoleClient) -> None:
    catalog_services.installation_install(entry_id="memory")

    html = root_console.get(BROWSE).content.decode()

    assert html.count('class="module console-card catalog-card"') == 8
    memory = html.split('id="entry-memory"')[1].split("</div>\n    </div>")[0]
    assert "console-badge installed" in memory
    slack = html.split('id="entry-slack"')[1].split("</div>\n    </div>")[0]
    assert "not installed" in slack


def test_search_keeps_only_matching_cards(root_console: ConsoleClient) -> None:
    html = root_console.get(BROWSE, {"q": "memory"}).content.decode()

    assert 'data-entry-id="memory"' in html
    assert 'data-entry-id="slack"' not in html


def test_search_without_match_says_so(root_console: ConsoleClient) -> None:
    html = root_console.get(BROWSE, {"q": "no-such-thing-zz"}).content.decode()

    assert 'id="catalog-empty"' in html
    assert 'console-card catalog-card' not in html


def test_installations_list_links_to_the_catalog(root_console: ConsoleClient) -> None:
    html = root_console.get(reverse("admin:catalog_installation_changelist")).content.decode()

    assert f'href="{BROWSE}"' in html


def test_connection_picker_offers_only_connections_of_the_needed_type(root_console: ConsoleClient,
                                                                     github: Connection) -> None:
    connection_services.connection_create(name="slack-one", connection_type="slack",
                                          credentials={"token": "xoxb-console-0001"})

    html = root_console.get(entry_url("github")).content.decode()

    assert f'<option value="{github.name}">' in html
    assert 'value="slack-one"' not in html


def test_connection_picker_honours_the_dialect(root_console: ConsoleClient) -> None:
    connection_services.connection_create(name="pg-one", connection_type="database",
                                          credentials={"dialect": "postgres", "host": "db.internal",
                                                       "database": "x", "username": "u", "password": "p"})
    connection_services.connection_create(name="lite-one", connection_type="database",
                                          credentials={"dialect": "sqlite", "database": "/tmp/x.db"})

    html = root_console.get(entry_url("postgres")).content.decode()

    assert 'value="pg-one"' in html
    assert 'value="lite-one"' not in html


def test_install_without_the_needed_connection_shows_the_rule(root_console: ConsoleClient) -> None:
    response = root_console.post(reverse("admin:catalog_install", args=["github"]), {"connection_name": ""})

    assert response.status_code == 422
    assert "needs a github connection" in response.content.decode()
    assert not Installation.objects.exists()


def test_install_with_a_connection_names_it_and_never_shows_its_secret(root_console: ConsoleClient,
                                                                        github: Connection) -> None:
    response = root_console.post(reverse("admin:catalog_install", args=["github"]), {"connection_name": github.name},
                                 follow=True)

    html = response.content.decode()
    assert Installation.objects.get(entry_id="github").connection == github
    assert f'id="installed-connection">{github.name}<' in html
    assert "installed." in html
    assert CANARY_TOKEN not in html and CANARY_SIGNING not in html


def test_installing_again_with_the_same_arguments_changes_nothing(root_console: ConsoleClient) -> None:
    url = reverse("admin:catalog_install", args=["memory"])
    root_console.post(url, {})

    html = root_console.post(url, {}, follow=True).content.decode()

    assert "nothing changed" in html
    assert Installation.objects.count() == 1


def test_directory_option_outside_the_allowed_roots_is_refused(root_console: ConsoleClient, tmp_path: Path,
                                                               settings: Any) -> None:
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    settings.SYNTHORG_CONFIG_OVERRIDES = {"mcp_catalog": {"allowed_roots": [str(allowed)]}}

    refused = root_console.post(reverse("admin:catalog_install", args=["filesystem"]),
                                {"option_directories": str(tmp_path)})
    accepted = root_console.post(reverse("admin:catalog_install", args=["filesystem"]),
                                 {"option_directories": f"{allowed}\n"})

    assert refused.status_code == 422
    assert "not under an allowed root" in refused.content.decode()
    assert accepted.status_code == 302
    assert Installation.objects.get(entry_id="filesystem").options == {"directories": [str(allowed)]}


def test_disabled_catalog_refuses_installs_with_its_reason(root_console: ConsoleClient, settings: Any) -> None:
    settings.SYNTHORG_CONFIG_OVERRIDES = {"mcp_catalog": {"enabled": False}}

    page = root_console.get(BROWSE).content.decode()
    response = root_console.post(reverse("admin:catalog_install", args=["memory"]), {})

    assert "mcp_catalog.enabled is false" in page
    assert response.status_code == 404
    assert not Installation.objects.exists()


def test_unknown_entry_is_404(root_console: ConsoleClient) -> None:
    assert root_console.get(entry_url("no-such-entry")).status_code == 404


def test_entry_page_follows_a_queued_job_and_stops_when_it_ends(root_console: ConsoleClient) -> None:
    catalog_services.installation_install(entry_id="memory")
    job = VerifyJob.objects.create(entry_id="memory")

    following = root_console.get(entry_url("memory")).content.decode()
    VerifyJob.objects.filter(pk=job.pk).update(
        status=VerifyJob.Status.SUCCEEDED, finished_at=timezone.now(),
        tools=[{"name": "create_entities", "description": "Create entities"}, {"name": "read_graph"}])
    finished = root_console.get(entry_url("memory")).content.decode()

    assert 'http-equiv="refresh"' in following
    assert 'data-status="queued"' in following
    assert 'http-equiv="refresh"' not in finished
    assert "<code>create_entities</code>" in finished and "<code>read_graph</code>" in finished


def test_failed_job_shows_its_error(root_console: ConsoleClient) -> None:
    catalog_services.installation_install(entry_id="memory")
    VerifyJob.objects.create(entry_id="memory", status=VerifyJob.Status.FAILED, error="npx: command not found")

    html = root_console.get(entry_url("memory")).content.decode()

    assert "npx: command not found" in html


def test_buttons_follow_the_user_permissions(console: Callable[..., ConsoleClient]) -> None:
    catalog_services.installation_install(entry_id="memory")
    viewer = console("catalog.view_installation")
    installer = console("catalog.view_installation", "catalog.add_installation", "catalog.verify_installation")

    seen = viewer.get(entry_url("memory")).content.decode()
    allowed = installer.get(entry_url("memory")).content.decode()

    assert 'id="install-form"' not in seen and 'id="verify-form"' not in seen
    assert 'id="install-form"' in allowed and 'id="verify-form"' in allowed
    assert 'id="uninstall-form"' not in allowed


def test_user_without_view_permission_cannot_browse(console: Callable[..., ConsoleClient]) -> None:
    assert console().get(BROWSE).status_code == 403
