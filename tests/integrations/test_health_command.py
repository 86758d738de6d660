"""`manage.py connection_check <name>`: the command-line twin of the on-demand endpoint."""
from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from integrations import services
from integrations.models import Connection
from tests.peers.http_peer import HttpPeer

pytestmark = pytest.mark.django_db


def test_healthy_connection_prints_and_records() -> None:
    with HttpPeer() as peer:
        services.connection_create(name="svc", connection_type="generic_http",
                                   credentials={"base_url": peer.url("/status/200")})
        out = StringIO()
        call_command("connection_check", "SVC", stdout=out)
    assert out.getvalue().startswith("svc: healthy (check: healthy")
    assert Connection.objects.get(name="svc").health_status == "healthy"


def test_failed_check_exits_nonzero_and_counts_toward_smoothing() -> None:
    with HttpPeer() as peer:
        services.connection_create(name="svc", connection_type="generic_http",
                                   credentials={"base_url": peer.url("/status/503")})
        for expected in (1, 2):
            with pytest.raises(CommandError, match="failed: unhealthy"):
                call_command("connection_check", "svc", stdout=StringIO())
            assert Connection.objects.get(name="svc").health_consecutive_failures == expected


def test_recent_flag_reuses_a_fresh_result_and_json_output() -> None:
    with HttpPeer() as peer:
        services.connection_create(name="svc", connection_type="generic_http",
                                   credentials={"base_url": peer.url("/status/200")})
        call_command("connection_check", "svc", stdout=StringIO())
        out = StringIO()
        call_command("connection_check", "svc", "--recent", "--json", stdout=out)
        assert len(peer.received) == 1
    body = json.loads(out.getvalue())
    assert body["cached"] is True and body["result"]["status"] == "healthy"


def test_unknown_name_is_a_command_error() -> None:
    with pytest.raises(CommandError, match="No connection named"):
        call_command("connection_check", "missing")
