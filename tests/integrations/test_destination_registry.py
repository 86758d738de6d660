"""Every connection type declares its destination fields, and none that decides where a secret
goes is missing (issue 12): a new type cannot forget the declaration."""
from __future__ import annotations

import re

import pytest

from integrations.types import REGISTRY, ConnectionType

# A field named like one of these, or of kind url, decides where a request goes.
_LOCATION_NAME = re.compile(r"(^|_)(url|uri|host|hostname|port|endpoint|server|address|dialect|issuer)$")

# What the issue names for each type, at least.
NAMED_IN_ISSUE = {
    "github": {"api_url"},
    "slack": set(),
    "generic_http": {"base_url", "auth_header", "auth_scheme"},
    "database": {"dialect", "host", "port", "database"},
    "smtp": {"host", "port", "use_tls"},
    "oauth_app": {"auth_url", "token_url", "device_authorization_url"},
}

TYPES = sorted(REGISTRY.values(), key=lambda t: t.name)


@pytest.mark.parametrize("ctype", TYPES, ids=lambda t: t.name)
def test_every_type_declares_its_destination_fields(ctype: ConnectionType) -> None:
    assert ctype.destination_fields is not None, f"{ctype.name} declares no destination_fields (use () for none)"
    unknown = set(ctype.destination_fields) - set(ctype.field_map)
    assert not unknown, f"{ctype.name}: destination_fields names unknown fields {unknown}"
    assert not any(ctype.field_map[f].secret for f in ctype.destination_fields)


@pytest.mark.parametrize("ctype", TYPES, ids=lambda t: t.name)
def test_every_location_field_is_a_destination_field(ctype: ConnectionType) -> None:
    locations = {f.name for f in ctype.fields
                 if not f.secret and (f.kind == "url" or _LOCATION_NAME.search(f.name))}
    assert locations <= set(ctype.destination_fields or ()), (
        f"{ctype.name}: {sorted(locations - set(ctype.destination_fields or ()))} decide where a request goes "
        "but are not in destination_fields")


@pytest.mark.parametrize("ctype", TYPES, ids=lambda t: t.name)
def test_the_fields_the_issue_names_are_declared(ctype: ConnectionType) -> None:
    assert ctype.name in NAMED_IN_ISSUE, f"a new type {ctype.name}: add it here and to test_destination_rule"
    assert NAMED_IN_ISSUE[ctype.name] <= set(ctype.destination_fields or ())


def test_the_types_describe_their_destination_fields() -> None:
    described = {t["name"]: t for t in (c.describe() for c in REGISTRY.values())}
    assert described["generic_http"]["destination_fields"] == ["base_url", "auth_header", "auth_scheme"]
