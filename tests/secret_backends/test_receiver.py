"""The receiver's fast path under a secret manager: on a cache hit an accepted delivery costs the
one insert (no connection read) and no secret-manager read; a change this service makes to the
signing secret applies to the very next delivery."""
from __future__ import annotations

from typing import Any
from unittest import mock

import pytest
from django.db import connection as db_connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from integrations import services
from integrations.secrets import managed
from tests.webhooks.receiving import github_body, github_headers, make_github, post
from tests.webhooks.test_receiver_fast_path import statements
from webhooks import receiver


@pytest.mark.django_db(transaction=True)
def test_cache_hit_reads_neither_database_nor_manager(secret_backend: str, settings: Any) -> None:
    if not settings.REDIS_URL:
        pytest.skip("the connection cache needs the generation stamp (Redis)")
    make_github()
    managed.cache_clear()
    receiver.connection_cache_clear()
    reads = managed.reads[secret_backend]
    body = github_body(0)
    assert post(Client(), "gh", "push", body, github_headers(body, delivery="warm")).status_code == 202
    assert managed.reads[secret_backend] - reads == 1  # the one read that fills the cache
    with mock.patch("webhooks.dispatcher.send_batch", return_value=True):
        for n in range(1, 51):
            body = github_body(n)
            with CaptureQueriesContext(db_connection) as context:
                response = post(Client(), "gh", "push", body, github_headers(body, delivery=f"d-{n}"))
            assert response.status_code == 202
            assert len(statements(context)) == 1, statements(context)  # the insert only
    assert managed.reads[secret_backend] - reads == 1

    services.connection_update(name="gh", data={"credentials": {"signing_secret": "a-brand-new-secret-123"}})
    body = github_body(99)
    assert post(Client(), "gh", "push", body, github_headers(body, delivery="old")).status_code == 401
    assert post(Client(), "gh", "push", body, github_headers(body, secret="a-brand-new-secret-123",
                                                             delivery="new")).status_code == 202
