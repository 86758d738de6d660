"""A refusal is answered as a refusal even when the database cannot record it (issue 13's
robustness, found again this round): the counters and samples are telemetry, the 401 or 429
is the answer."""
from __future__ import annotations

import logging
from typing import Any
from unittest import mock

import pytest
from django.db import OperationalError
from django.test import Client

from tests.webhooks.receiving import github_body, github_headers, make_github, post
from webhooks import rejections
from webhooks.models import Delivery, ReceiptSample, RejectionCount


@pytest.fixture
def fresh_warning_window(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rejections, "_unrecorded", {"logged_at": 0.0, "since": 0}, raising=False)


def refused(client: Client, n: int) -> Any:
    body = github_body(n)
    return post(client, "gh", "push", body, github_headers(body, secret="wrong-secret", delivery=f"d-{n}"))


@pytest.mark.django_db
def test_a_bad_signature_is_still_401_when_the_activity_log_cannot_be_written(
        fresh_warning_window: None, caplog: pytest.LogCaptureFixture) -> None:
    make_github()
    client = Client(raise_request_exception=False)
    with mock.patch.object(rejections, "_count", side_effect=OperationalError("server closed the connection")), \
            caplog.at_level(logging.WARNING, logger="webhooks.rejections"):
        statuses = [refused(client, n).status_code for n in range(3)]
    assert statuses == [401, 401, 401]
    lines = [r.getMessage() for r in caplog.records if r.name == "webhooks.rejections"]
    assert len(lines) == 1 and "not recorded" in lines[0] and "OperationalError" in lines[0]
    assert "server closed" not in lines[0]
    # The test's transaction is still usable: the failure was confined to a savepoint.
    assert Delivery.objects.count() == 0 and not RejectionCount.objects.exists()


@pytest.mark.django_db
def test_a_flooding_address_still_gets_429_when_the_activity_log_cannot_be_written(
        settings: Any, fresh_warning_window: None) -> None:
    settings.SYNTHORG_CONFIG_OVERRIDES = {"webhooks": {"flood_rpm_per_ip": 1}}
    make_github()
    client = Client(raise_request_exception=False)
    body = github_body(1)
    assert post(client, "gh", "push", body, github_headers(body, delivery="d-1")).status_code == 202
    with mock.patch.object(rejections, "_count", side_effect=OperationalError("the database system is starting up")):
        body = github_body(2)
        assert post(client, "gh", "push", body, github_headers(body, delivery="d-2")).status_code == 429


@pytest.mark.django_db(transaction=True)
def test_outside_a_transaction_the_refusal_is_answered_and_recorded_again_once_the_database_is_back(
        fresh_warning_window: None) -> None:
    make_github()
    client = Client(raise_request_exception=False)
    with mock.patch.object(rejections, "_count", side_effect=OperationalError("connection refused")):
        assert refused(client, 1).status_code == 401
    assert refused(client, 2).status_code == 401
    assert RejectionCount.objects.get().count == 1 and ReceiptSample.objects.count() == 1
