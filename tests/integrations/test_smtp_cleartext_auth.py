"""Issue 12: the SMTP password never goes in clear text to a host that is not loopback.

Refused at validation (422 naming use_tls, create and PATCH) and again at connect time, for a
row stored before the rule, by the health check and the email alert sink alike (both use
``integrations.types.smtp.CheckedSMTP``): the real aiosmtpd peer sees no AUTH.
"""
from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from integrations import services
from integrations.models import Connection
from integrations.types import smtp
from integrations.types.probing import HEALTHY, UNHEALTHY, ProbeContext
from notifications.sinks import email
from synthorg.egress import PermanentError
from tests.peers.http_peer import FakeDns
from tests.peers.smtp_peer import SmtpPeer

PASSWORD = "smtp-pw-Cl34r"
URL = "/api/v1/connections"


def context(values: dict[str, Any]) -> ProbeContext:
    return ProbeContext(connection_id=1, name="relay", values=values, timeout=5.0)


@pytest.fixture
def plain_peer() -> Any:
    with SmtpPeer(users={"bob": PASSWORD}) as peer:  # no STARTTLS; AUTH allowed in clear
        yield peer


@pytest.mark.django_db
def test_create_without_tls_to_a_network_host_is_422(operator_client: APIClient) -> None:
    response = operator_client.post(URL, {"name": "relay", "connection_type": "smtp", "credentials": {
        "host": "mail.example.com", "use_tls": False, "username": "bob", "password": PASSWORD}}, format="json")
    assert response.status_code == 422, response.content
    assert "clear text" in str(response.json()["errors"]["credentials.use_tls"])
    assert PASSWORD not in response.content.decode()
    assert not Connection.objects.exists()


@pytest.mark.django_db
def test_patch_turning_tls_off_is_422(operator_client: APIClient) -> None:
    services.connection_create(name="relay", connection_type="smtp", credentials={
        "host": "mail.example.com", "username": "bob", "password": PASSWORD})
    response = operator_client.patch(f"{URL}/relay", {"credentials": {"use_tls": False, "password": PASSWORD}},
                                     format="json")
    assert response.status_code == 422, response.content
    assert "credentials.use_tls" in response.json()["errors"]
    assert Connection.objects.get(name="relay").config["use_tls"] is True


def test_probe_sends_no_auth_in_clear_to_a_network_host(plain_peer: SmtpPeer,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    # A row stored before the rule: a network name (here resolving to the peer) without TLS.
    FakeDns().install(monkeypatch).answer("mail.example.test", ["127.0.0.1"])
    result = smtp.probe(context({"host": "mail.example.test", "port": plain_peer.port, "use_tls": False,
                                 "username": "bob", "password": PASSWORD}))
    assert result.status == UNHEALTHY
    assert "AUTH not sent" in result.detail and PASSWORD not in result.detail
    assert "AUTH" not in plain_peer.commands and plain_peer.logins == []


def test_probe_to_loopback_without_tls_still_authenticates(plain_peer: SmtpPeer) -> None:
    result = smtp.probe(context({"host": "127.0.0.1", "port": plain_peer.port, "use_tls": False,
                                 "username": "bob", "password": PASSWORD}))
    assert result.status == HEALTHY, result.detail
    assert plain_peer.logins == [("bob", True)]


class _Sink:
    connection_id = 1
    settings = {"to": ["ops@example.com"]}


class _Message:
    alert_id = "alert-1"
    subject = "s"
    text = "t"
    html = "<p>t</p>"


def test_email_sink_sends_no_auth_in_clear_to_a_network_host(plain_peer: SmtpPeer,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    FakeDns().install(monkeypatch).answer("mail.example.test", ["127.0.0.1"])
    values = {"host": "mail.example.test", "port": plain_peer.port, "use_tls": False,
              "username": "bob", "password": PASSWORD}
    with pytest.raises(PermanentError, match="AUTH not sent") as caught:
        email.send(sink=_Sink(), message=_Message(), values=values, thread_root=None, timeout=5.0)
    assert PASSWORD not in str(caught.value)
    assert "AUTH" not in plain_peer.commands and plain_peer.logins == []


def test_email_sink_to_loopback_without_tls_authenticates_once(plain_peer: SmtpPeer) -> None:
    values = {"host": "127.0.0.1", "port": plain_peer.port, "use_tls": False, "username": "bob",
              "password": PASSWORD}
    assert email.send(sink=_Sink(), message=_Message(), values=values, thread_root=None, timeout=5.0) == 250
    assert plain_peer.logins == [("bob", True)]


@pytest.mark.django_db
def test_admin_add_shows_the_rule_on_use_tls(superuser: Any) -> None:
    from django.test import Client
    from django.urls import reverse

    client = Client()
    client.force_login(superuser)
    data = {"name": "mail", "field_host": "smtp.example.com", "field_port": "587", "field_username": "bot",
            "field_password": PASSWORD, "field_use_tls": "false", "rate_limit_rpm": "0", "rate_limit_burst": "0",
            "rate_limit_max_concurrent": "0", "metadata": "{}"}
    response = client.post(f"{reverse('admin:integrations_connection_add')}?name=mail&connection_type=smtp", data)
    assert response.status_code == 200
    assert "clear text" in response.context["adminform"].form.errors["field_use_tls"][0]
    assert PASSWORD not in response.content.decode()
    assert not Connection.objects.exists()
