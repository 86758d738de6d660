"""The github and slack checks (`responses` for their SaaS hosts) and generic_http against a real local server."""
from __future__ import annotations

import json
from typing import Any

import pytest
import responses

from integrations.types import generic_http, github, slack
from integrations.types.probing import DEGRADED, HEALTHY, UNHEALTHY, ProbeContext
from tests.peers.http_peer import HttpPeer, Reply

TOKEN = "ghp_test_token_value_123"


def context(values: dict[str, Any], timeout: float = 5.0) -> ProbeContext:
    return ProbeContext(connection_id=7, name="peer", values=values, timeout=timeout)


# --- github --------------------------------------------------------------------------------------

@responses.activate
def test_github_user_200_healthy_with_token_sent() -> None:
    responses.get("https://api.github.com/user", json={"login": "octocat"})
    result = github.probe(context({"token": TOKEN, "api_url": "https://api.github.com"}))
    assert result.status == HEALTHY
    assert result.detail == "authenticated as octocat"
    assert responses.calls[0].request.headers["Authorization"] == f"Bearer {TOKEN}"


@responses.activate
def test_github_bad_token_401_unhealthy_without_token_in_detail() -> None:
    responses.get("https://api.github.com/user", status=401, json={"message": f"Bad credentials {TOKEN}"})
    result = github.probe(context({"token": TOKEN}))
    assert result.status == UNHEALTHY
    assert "HTTP 401" in result.detail
    assert TOKEN not in result.detail


@responses.activate
def test_github_rate_limited_degraded_with_retry_after() -> None:
    responses.get("https://api.github.com/user", status=429, headers={"Retry-After": "60"})
    result = github.probe(context({"token": TOKEN}))
    assert result.status == DEGRADED
    assert result.retry_after == 60
    assert "Retry-After 60 s" in result.detail


@responses.activate
def test_github_enterprise_cloud_host_receives_the_token_only_when_listed(integrations_config: Any) -> None:
    # Anyone can own a ghe.com tenant: *.ghe.com is not trusted as such (issue 12).
    responses.get("https://api.acme.ghe.com/user", json={"login": "acme-bot"})
    refused = github.probe(context({"token": TOKEN, "api_url": "https://api.acme.ghe.com"}))
    assert refused.status == UNHEALTHY and "token not sent" in refused.detail
    assert len(responses.calls) == 0
    integrations_config({"health": {"github_allowed_hosts": ["api.acme.ghe.com"]}})
    result = github.probe(context({"token": TOKEN, "api_url": "https://api.acme.ghe.com"}))
    assert result.status == HEALTHY


@responses.activate
def test_github_unlisted_host_never_receives_the_token() -> None:
    # No registered response: any request would raise ConnectionError inside `responses`.
    result = github.probe(context({"token": TOKEN, "api_url": "https://git.example.org/api/v3"}))
    assert result.status == UNHEALTHY
    assert "token not sent" in result.detail and "github_allowed_hosts" in result.detail
    assert len(responses.calls) == 0


@responses.activate
def test_github_allowed_hosts_key_admits_an_enterprise_server(integrations_config: Any) -> None:
    integrations_config({"health": {"github_allowed_hosts": ["git.example.org"]}})
    responses.get("https://git.example.org/api/v3/user", json={"login": "ghes-bot"})
    result = github.probe(context({"token": TOKEN, "api_url": "https://git.example.org/api/v3"}))
    assert result.status == HEALTHY
    assert responses.calls[0].request.headers["Authorization"] == f"Bearer {TOKEN}"


def test_github_lookalike_hosts_not_allowed() -> None:
    for host in ("github.com.evil.test", "evilgithub.com", "api.github.co", "ghe.com.evil.test",
                 "localhost.github.com", "api.evil.ghe.com", "uploads.github.com"):
        assert not github.token_host_allowed(host), host
    for host in ("api.github.com", "API.GitHub.com."):
        assert github.token_host_allowed(host), host


# --- slack ------------------------------------------------------------------------------------------

@responses.activate
def test_slack_auth_test_ok_healthy() -> None:
    responses.post("https://slack.com/api/auth.test", json={"ok": True, "team": "Acme", "user": "bot"})
    result = slack.probe(context({"token": "xoxb-1-2-3"}))
    assert result.status == HEALTHY
    assert result.detail == "authenticated as bot in Acme"
    assert responses.calls[0].request.headers["Authorization"] == "Bearer xoxb-1-2-3"


@responses.activate
def test_slack_ok_false_reports_slack_error() -> None:
    responses.post("https://slack.com/api/auth.test", json={"ok": False, "error": "invalid_auth"})
    result = slack.probe(context({"token": "xoxb-1-2-3"}))
    assert result.status == UNHEALTHY
    assert result.detail == "Slack auth.test answered ok=false: invalid_auth"


@responses.activate
def test_slack_odd_error_text_not_echoed() -> None:
    responses.post("https://slack.com/api/auth.test", json={"ok": False, "error": "token xoxb-1-2-3 <b>"})
    result = slack.probe(context({"token": "xoxb-1-2-3"}))
    assert result.status == UNHEALTHY
    assert "xoxb" not in result.detail and result.detail.endswith("unknown_error")


@responses.activate
def test_slack_http_500_unhealthy() -> None:
    responses.post("https://slack.com/api/auth.test", status=500)
    assert slack.probe(context({"token": "xoxb-1"})).status == UNHEALTHY


# --- generic_http (real local server) ------------------------------------------------------------------

@pytest.fixture
def peer() -> Any:
    with HttpPeer() as server:
        yield server


def test_generic_2xx_healthy_with_head_and_auth(peer: HttpPeer) -> None:
    result = generic_http.probe(context({"base_url": peer.url("/status/204"), "token": "tok-abc",
                                         "auth_header": "Authorization", "auth_scheme": "Bearer"}))
    assert result.status == HEALTHY
    assert [r.method for r in peer.received] == ["HEAD"]
    assert peer.received[0].headers["Authorization"] == "Bearer tok-abc"


def test_generic_api_key_sent_raw_in_its_header(peer: HttpPeer) -> None:
    generic_http.probe(context({"base_url": peer.url("/status/200"), "api_key": "key-xyz",
                                "auth_header": "X-Api-Key"}))
    assert peer.received[0].headers["X-Api-Key"] == "key-xyz"


def test_generic_custom_scheme_and_empty_scheme(peer: HttpPeer) -> None:
    generic_http.probe(context({"base_url": peer.url("/status/200"), "token": "t1", "auth_scheme": "Token"}))
    generic_http.probe(context({"base_url": peer.url("/status/200"), "token": "t2", "auth_scheme": ""}))
    assert [r.headers["Authorization"] for r in peer.received] == ["Token t1", "t2"]


def test_generic_redirect_not_followed_healthy(peer: HttpPeer) -> None:
    result = generic_http.probe(context({"base_url": peer.url("/redirect"), "token": "t"}))
    assert result.status == HEALTHY
    assert "redirect not followed" in result.detail
    assert [r.path for r in peer.received] == ["/redirect"]


def test_generic_head_405_then_get(peer: HttpPeer) -> None:
    result = generic_http.probe(context({"base_url": peer.url("/head-405"), "token": "t"}))
    assert result.status == HEALTHY
    assert result.detail == "GET: HTTP 200"
    assert [r.method for r in peer.received] == ["HEAD", "GET"]
    assert peer.received[1].headers["Authorization"] == "Bearer t"


def test_generic_head_501_then_get(peer: HttpPeer) -> None:
    peer.script("/no-head", Reply(501), Reply(200, b"ok"))
    result = generic_http.probe(context({"base_url": peer.url("/no-head")}))
    assert result.status == HEALTHY
    assert [r.method for r in peer.received] == ["HEAD", "GET"]


def test_generic_429_degraded_reports_retry_after(peer: HttpPeer) -> None:
    result = generic_http.probe(context({"base_url": peer.url("/retry-after/120")}))
    assert result.status == DEGRADED
    assert result.retry_after == 120
    assert "HTTP 429" in result.detail and "Retry-After 120 s" in result.detail
    assert len(peer.received) == 1  # no inline retry


def test_generic_500_unhealthy(peer: HttpPeer) -> None:
    result = generic_http.probe(context({"base_url": peer.url("/status/500")}))
    assert result.status == UNHEALTHY
    assert "HTTP 500" in result.detail
    assert len(peer.received) == 1


def test_generic_404_unhealthy(peer: HttpPeer) -> None:
    assert generic_http.probe(context({"base_url": peer.url("/status/404")})).status == UNHEALTHY


def test_generic_hang_past_timeout_unhealthy(peer: HttpPeer) -> None:
    result = generic_http.probe(context({"base_url": peer.url("/hang/30")}, timeout=1))
    assert result.status == UNHEALTHY
    assert "read timeout" in result.detail


def test_generic_query_string_secret_not_in_detail(peer: HttpPeer) -> None:
    result = generic_http.probe(context({"base_url": peer.url("/status/503?api_key=qs-secret-5")}))
    assert result.status == UNHEALTHY
    assert "qs-secret-5" not in result.detail


def test_generic_metadata_address_refused(peer: HttpPeer) -> None:
    result = generic_http.probe(context({"base_url": "https://169.254.169.254/latest/meta-data/"}))
    assert result.status == UNHEALTHY
    assert "blocked_networks" in result.detail
    assert peer.received == []


def test_generic_echo_sees_no_secret_beyond_its_header(peer: HttpPeer) -> None:
    generic_http.probe(context({"base_url": peer.url("/echo"), "token": "tok-1", "signing_secret": "sig-2"}))
    sent = json.dumps(peer.received[0].headers)
    assert "sig-2" not in sent
