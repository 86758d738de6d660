"""Content-Security-Policy on every page (issue 12 §6), checked without a browser; the
Chromium half is tests/e2e/test_csp_browser.py."""
from __future__ import annotations

import re
from typing import Any

import pytest
from django.http import HttpResponse
from django.test import Client

from integrations import services as connection_services
from synthorg.csp import csp_allow, policy_header

pytestmark = pytest.mark.django_db

STRICT = ("default-src 'self'", "script-src 'self'", "object-src 'none'", "frame-ancestors 'none'",
          "form-action 'self'", "base-uri 'self'")


@pytest.mark.parametrize("path", ["/admin/login/", "/api/docs/", "/api/schema/", "/api/v1/oauth/callback?state=x",
                                  "/api/v1/connections", "/api/v1/connections?q=a%00b", "/healthz"])
def test_every_response_carries_the_strict_policy(client: Client, path: str) -> None:
    policy = client.get(path)["Content-Security-Policy"]

    assert all(directive in policy for directive in STRICT)
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy and "http" not in policy


def test_pages_have_no_inline_script_and_no_cdn(client: Client, superuser: Any) -> None:
    client.force_login(superuser)
    connection = connection_services.connection_create(name="gh-csp", connection_type="github",
                                                       credentials={"token": "t" * 20, "signing_secret": "s" * 20})
    for path in ["/admin/", f"/admin/integrations/connection/{connection.pk}/change/", "/api/docs/",
                 "/admin/integrations/tunnelstate/", "/admin/catalog/catalogpage/"]:
        html = client.get(path).content.decode()
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), path  # every script is a file
        assert "cdn.jsdelivr" not in html and ' style="' not in html, path


def test_a_nonce_enters_the_policy_only_where_a_page_uses_it(client: Client) -> None:
    callback = client.get("/api/v1/oauth/callback?state=x")
    login = client.get("/admin/login/")

    nonce = re.search(r'<style nonce="([^"]+)">', callback.content.decode())
    assert nonce and f"style-src 'self' 'nonce-{nonce.group(1)}'" in callback["Content-Security-Policy"]
    assert "nonce-" not in login["Content-Security-Policy"]


def test_a_view_widens_one_directive_for_its_own_response() -> None:
    response = HttpResponse()
    csp_allow(response, "form-action", "https://idp.example:8443/authorize?client_id=x")
    csp_allow(response, "form-action", "javascript:alert(1)")  # not an origin: ignored

    policy = policy_header(None, response.csp_extra)  # type: ignore[attr-defined]

    assert "form-action 'self' https://idp.example:8443;" in policy
    assert "javascript" not in policy


def test_the_oauth_connect_page_may_post_on_to_its_provider(client: Client, superuser: Any) -> None:
    client.force_login(superuser)
    connection_services.connection_create(name="idp-csp", connection_type="oauth_app", credentials={
        "client_id": "c", "client_secret": "s-csp-0123456789", "auth_url": "https://idp.example/authorize",
        "token_url": "https://idp.example/token"})

    policy = client.get("/admin/oauthflow/oauthtoken/connect/idp-csp/")["Content-Security-Policy"]

    assert "form-action 'self' https://idp.example;" in policy
