"""One URL parser decides where a request goes (issue 12): the rules, and the outbound wrapper
refusing before any connection what the rules refuse or the caller's host list does not name."""
from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from integrations.types.base import http_url, https_url_unless_loopback
from synthorg import url_policy
from synthorg.http import PermanentError, TransientError, URLRefused, egress_session, guard_session, http_request
from tests.peers.bait_listener import BaitListener
from tests.peers.http_peer import HttpPeer

FAST = (1.0, 1.0)


@pytest.fixture
def http_peer() -> Iterator[HttpPeer]:
    with HttpPeer() as running:
        yield running


@pytest.mark.parametrize(("url", "rule"), [
    ("https://localhost\\.github.com", "backslash"),  # the reproduction
    ("https://127.0.0.1:8443\\@api.github.com", "backslash"),
    ("https://user@api.github.com", "user info"),
    ("https://user:pw@api.github.com", "user info"),
    ("https://api.github.com@evil.test", "user info"),
    ("https://api.github.com /x", "whitespace"),
    ("https://api.github.com\t.evil.test/", "whitespace"),
    ("https://api.github.com\x00.evil.test/", "control characters"),
    ("https://api.github.com/\x7f", "control characters"),
    ("https://api.github.com/\x1b", "control characters"),
    ("https://пример.рф/", "ASCII"),
    ("https://api%2egithub.com/", "parsers disagree"),  # urllib3 decodes the host, urlsplit does not
    ("https://api.github.com/a/../b", "parsers disagree"),  # urllib3 removes dot segments
    ("https://api.github.com#frag", "fragment"),
    ("https://api.github.com:99999/", "well-formed"),
    ("https://[::1/", "well-formed"),
    ("ftp://api.github.com/", "absolute http:// or https://"),
    ("//api.github.com/", "absolute http:// or https://"),
    ("https:///path", "absolute http:// or https://"),
    ("https://a..b/", "name a host"),
])
def test_unsafe_urls_are_refused_naming_the_rule(url: str, rule: str) -> None:
    with pytest.raises(url_policy.UnsafeURL, match=rule) as caught:
        url_policy.check_url(url)
    # The message names the rule, never repeats the URL (it may carry a token in its query).
    assert "github" not in str(caught.value) and "evil" not in str(caught.value)
    with pytest.raises(ValueError, match=rule):  # the type validators use the same rules
        http_url(url)


@pytest.mark.parametrize(("url", "host", "port", "path"), [
    ("https://api.github.com", "api.github.com", 443, "/"),
    ("https://API.GitHub.com./api/v3", "api.github.com", 443, "/api/v3"),
    ("https://ghe.example.com:8443/api/v3?x=@y", "ghe.example.com", 8443, "/api/v3"),
    ("http://[::1]:8080/a%20b", "::1", 8080, "/a%20b"),
    ("http://127.0.0.1:1/a%20b", "127.0.0.1", 1, "/a%20b"),
])
def test_plain_urls_are_read_as_urllib3_connects(url: str, host: str, port: int, path: str) -> None:
    destination = url_policy.check_url(url)
    assert (destination.host, destination.port, destination.path) == (host, port, path)


def test_https_required_except_loopback() -> None:
    for url in ("http://localhost:8000/x", "http://127.0.0.1/x", "http://[::1]/x", "http://a.localhost/"):
        https_url_unless_loopback(url)
    for url in ("http://api.example.com/", "http://127.0.0.1.nip.io/", "http://localhost.evil.test/"):
        with pytest.raises(ValueError, match="must use https://"):
            https_url_unless_loopback(url)


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:{port}\\@api.github.com/user",
    "http://127.0.0.1:{port}/x\\y",
    "http://u:p@127.0.0.1:{port}/",
    "http://127.0.0.1:{port}/a b",
])
def test_wrapper_refuses_a_stored_unsafe_url_before_connecting(url: str) -> None:
    with BaitListener("127.0.0.1") as trap:
        with pytest.raises(URLRefused, match="refused, the URL"):
            http_request("GET", url.format(port=trap.port), timeout=FAST, headers={"Authorization": "Bearer t0k"})
    assert trap.connections == 0 and not trap.received


def test_sessions_refuse_unsafe_urls_too() -> None:
    # requests-oauthlib calls Session.request: the raw URL is judged before requests rewrites it.
    with BaitListener("127.0.0.1") as trap, egress_session(FAST) as session:
        with pytest.raises(URLRefused):
            session.post(f"http://127.0.0.1:{trap.port}\\@idp.example.com/token", data={"client_secret": "s"})
    assert trap.connections == 0


def test_allowed_hosts_refuse_any_other_host_before_connecting() -> None:
    with BaitListener("127.0.0.1") as trap:
        with pytest.raises(URLRefused, match=r"127\.0\.0\.1 is not a host this call may send to"):
            http_request("GET", f"http://127.0.0.1:{trap.port}/user", timeout=FAST,
                         allowed_hosts={"api.github.com"})
    assert trap.connections == 0


def test_allowed_hosts_are_judged_on_the_connection_pool_host() -> None:
    # Session.send skips prepare_request: the adapter still checks the host it connects to.
    with BaitListener("127.0.0.1") as trap, egress_session(FAST, allowed_hosts={"api.github.com"}) as session:
        prepared = requests.Request("GET", f"http://127.0.0.1:{trap.port}/user",
                                    headers={"Authorization": "Bearer t0k"}).prepare()
        with pytest.raises(URLRefused, match="not a host this call may send to"):
            session.send(prepared)
    assert trap.connections == 0


def test_allowed_host_is_reached(http_peer: HttpPeer) -> None:
    response = http_request("GET", http_peer.url("/status/200"), timeout=FAST,
                            allowed_hosts={"LOCALHOST.", "127.0.0.1"})
    assert response.status_code == 200


def test_percent_in_url_is_reported_not_crashed() -> None:
    # Issue 12: the error mapper %-formatted a message holding the URL: "%20b" raised ValueError.
    with pytest.raises(TransientError) as caught:
        http_request("GET", "http://127.0.0.1:1/a%20b", timeout=FAST)
    assert str(caught.value) == "GET http://127.0.0.1:1/a%20b: connection failed (ConnectionRefusedError)"


def test_percent_in_url_through_a_guarded_session() -> None:
    session = guard_session(requests.Session(), FAST)
    with pytest.raises(TransientError, match="a%20b%25: connection failed"):
        session.get("http://127.0.0.1:1/a%20b%25")


def test_refusal_is_permanent() -> None:
    assert issubclass(URLRefused, PermanentError) and URLRefused.code == "url_refused"


def test_a_refused_url_with_control_characters_is_shown_escaped() -> None:
    with pytest.raises(URLRefused) as caught:
        http_request("GET", "http://127.0.0.1:1/a\x1b[31mb\x00", timeout=FAST)
    assert "\x1b" not in str(caught.value) and "\x00" not in str(caught.value)
    assert "/a\\x1b[31mb\\x00: refused, the URL must not contain control characters" in str(caught.value)
