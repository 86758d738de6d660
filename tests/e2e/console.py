"""Shared pieces of the operator-console journeys (tests/e2e/test_console_*.py).

`console` is a logged-in superuser's browser tab against pytest-django's live server that keeps
every HTML document the tab receives, straight from the network (redirects included, with their
Location header), and the rendered DOM at each screenshot. A journey registers every secret it
creates with `console.canary(value)`; `console.leaks()` lists each canary found in anything the
tab received, and the fixture fails the test if one is left at the end.

The live server runs in a thread of the test process, so in-process stubs (`responses`) and
`settings` overrides apply to the requests the browser makes.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Error as PlaywrightError

from tests.e2e.browser import admin_login, screenshot

ADMIN_USERNAME = "root"
ADMIN_PASSWORD = "pw-root-123"  # the `superuser` fixture's password (tests/conftest.py)


@dataclass(frozen=True)
class Received:
    """One document the tab received: a network response (`source="network"`) or a DOM snapshot."""

    url: str
    status: int
    text: str
    source: str


@dataclass
class Console:
    page: Any
    base_url: str
    received: list[Received] = field(default_factory=list)
    canaries: set[str] = field(default_factory=set)
    unreadable: list[str] = field(default_factory=list)

    def canary(self, value: str) -> str:
        """Register a secret value that must never reach the browser; returns it."""
        self.canaries.add(value)
        return value

    def url(self, path: str) -> str:
        return self.base_url + path

    def goto(self, path: str) -> Any:
        response = self.page.goto(self.url(path))
        assert response is not None and response.status < 400, f"{path}: {response and response.status}"
        return response

    def shot(self, name: str) -> Path:
        """Screenshot the page under tests/screenshots/<name>.png and keep its rendered DOM."""
        self.received.append(Received(self.page.url, 0, self.page.content(), "dom"))
        return screenshot(self.page, name)

    def leaks(self) -> list[str]:
        found = [f"{canary!r} in {item.source} {item.url}"
                 for item in self.received for canary in self.canaries if canary in item.text]
        return found + [f"could not read {url}" for url in self.unreadable]

    def pages_seen(self) -> list[str]:
        return [item.url for item in self.received if item.source == "network"]

    # Called for every response the tab gets; only the documents of its main frame are kept.
    def _on_response(self, response: Any) -> None:
        request = response.request
        if request.resource_type != "document" or request.frame != self.page.main_frame:
            return
        if 300 <= response.status < 400:
            # A redirect has no body; its Location (e.g. an OAuth callback) is what it carries.
            self.received.append(Received(response.url, response.status, response.headers.get("location", ""),
                                          "network"))
            return
        try:
            body = response.text()
        except PlaywrightError:  # reported by leaks(), never ignored
            self.unreadable.append(response.url)
            return
        self.received.append(Received(response.url, response.status, body, "network"))


@pytest.fixture(name="console")
def console_fixture(page: Any, live_server: Any, superuser: Any) -> Iterator[Console]:
    tab = Console(page=page, base_url=live_server.url)
    page.on("response", tab._on_response)
    admin_login(page, live_server.url, ADMIN_USERNAME, ADMIN_PASSWORD)
    yield tab
    leaks = tab.leaks()
    assert not leaks, "secret values reached the browser: " + "; ".join(leaks)
