"""A client generated from the schema works: create -> read -> delete of a connection, live.

openapi-python-client builds a package from the schema drf-spectacular generates (as a client
author would from /api/schema/); the test imports it and drives the live server through it.
A schema that lies (a required parameter in no path, a wrong body) breaks the generation or
the calls.
"""
from __future__ import annotations

import importlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from drf_spectacular.generators import SchemaGenerator
from rest_framework.authtoken.models import Token

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PACKAGE = "synthorg_generated_client"
GENERATOR = Path(sys.executable).with_name("openapi-python-client")


@pytest.fixture
def generated_client(tmp_path: Path) -> Iterator[ModuleType]:
    schema = tmp_path / "schema.yaml"
    schema.write_text(yaml.safe_dump(SchemaGenerator().get_schema(request=None, public=True), sort_keys=False))
    config = tmp_path / "generator.yaml"
    config.write_text("post_hooks: []\n")  # no ruff pass over the output: faster, and not our style anyway
    result = subprocess.run(
        [str(GENERATOR), "generate", "--path", str(schema), "--output-path", str(tmp_path / PACKAGE),
         "--meta", "none", "--config", str(config)],
        capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Warning" not in result.stdout + result.stderr, result.stdout + result.stderr  # nothing skipped
    sys.path.insert(0, str(tmp_path))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(tmp_path))
        for name in [n for n in sys.modules if n == PACKAGE or n.startswith(PACKAGE + ".")]:
            del sys.modules[name]


def _module(name: str) -> Any:
    return importlib.import_module(f"{PACKAGE}.{name}")


def test_generated_client_creates_reads_and_deletes_a_connection(
        generated_client: ModuleType, live_server: Any, superuser: Any) -> None:
    token = Token.objects.create(user=superuser).key
    client = generated_client.AuthenticatedClient(base_url=live_server.url, token=token, prefix="Token")
    create = _module("api.connections.connections_create")
    retrieve = _module("api.connections.connections_retrieve")
    destroy = _module("api.connections.connections_destroy")
    models = _module("models")

    body = models.ConnectionCreateInputRequest.from_dict({
        "name": "gen-client", "connection_type": "generic_http",
        "credentials": {"base_url": "http://127.0.0.1:9/", "token": "generated-client-token-1"},
    })
    created = create.sync_detailed(client=client, body=body)
    assert created.status_code == 201, created.content
    assert isinstance(created.parsed, models.ConnectionOutput)
    assert created.parsed.name == "gen-client"
    assert b"generated-client-token-1" not in created.content  # secrets never come back

    read = retrieve.sync_detailed(client=client, name="gen-client")
    assert read.status_code == 200
    assert read.parsed.connection_type == "generic_http"

    deleted = destroy.sync_detailed(client=client, name="gen-client")
    assert deleted.status_code == 204

    gone = retrieve.sync_detailed(client=client, name="gen-client")
    assert gone.status_code == 404
    assert isinstance(gone.parsed, models.Error)  # the one documented error body
    assert gone.parsed.code == "connection_not_found"
