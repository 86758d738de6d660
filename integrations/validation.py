"""Check a type's fields: strict kinds, choices, validators, required fields and cross-field rules.

Returns problems by field instead of raising, so the caller can report every problem at once
(422 naming each field and its rule) before anything is written.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from integrations.types import ConnectionType, FieldSpec
from synthorg.json_values import depth_exceeds, unstorable_path

_KIND_WORDS = {"string": "a string", "url": "a string", "integer": "an integer", "boolean": "a boolean",
               "list": "a list of strings", "mapping": "an object of strings"}


def _kind_ok(spec: FieldSpec, value: Any) -> bool:
    if spec.kind in {"string", "url"}:
        return isinstance(value, str)
    if spec.kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if spec.kind == "boolean":
        return isinstance(value, bool)
    if spec.kind == "list":
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    if spec.kind == "mapping":
        return isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())
    return False


# Secret fields hold PEM private keys, certificate chains and service-account JSON (issue 13:
# 4,096 was too small); the other strings are names, hosts and URLs.
SECRET_MAX_CHARS = 32_768
VALUE_MAX_CHARS = 4_096


# The API's bound on a body (synthorg.parsers.MAX_NESTING, 64) less the body's own level, for
# the admin and the commands too.
METADATA_MAX_NESTING = 63


def metadata_problems(metadata: Any) -> dict[str, list[str]]:
    """Connection metadata the database cannot hold, by path (``metadata.team``): NUL, lone
    surrogates, nesting past `METADATA_MAX_NESTING`."""
    if not metadata:
        return {}
    found = unstorable_path(metadata, root="metadata")
    if found is not None:
        return {found[0]: [found[1]]}
    if depth_exceeds(metadata, METADATA_MAX_NESTING):
        return {"metadata": [f"must not nest deeper than {METADATA_MAX_NESTING} levels"]}
    return {}


def check_value(spec: FieldSpec, value: Any) -> list[str]:
    if not _kind_ok(spec, value):
        return [f"must be {_KIND_WORDS[spec.kind]}"]
    # The API's parser refuses these for every JSON body (synthorg.parsers); this keeps the
    # rule for the admin and the commands, which call the services directly.
    unstorable = unstorable_path(value)
    if unstorable is not None:
        return [unstorable[1]]
    limit = SECRET_MAX_CHARS if spec.secret else VALUE_MAX_CHARS
    if spec.kind in {"string", "url"} and len(value) > limit:
        return [f"must be at most {limit} characters"]
    if spec.secret and value == "":
        return ["must not be empty (send null to remove it)"]
    if spec.choices and value not in spec.choices:
        return [f"must be one of {', '.join(spec.choices)}"]
    problems = []
    for validator in spec.validators:
        try:
            validator(value)
        except ValueError as exc:
            problems.append(str(exc))
    return problems


def validate_fields(
    ctype: ConnectionType, values: Mapping[str, Any],
) -> tuple[dict[str, Any], dict[str, Any], dict[str, list[str]]]:
    """Split `values` (every field of the type, secret or not) into (config, secrets, problems).

    Defaults are applied to non-secret fields; `None` means "not set".
    """
    specs = ctype.field_map
    problems: dict[str, list[str]] = {}
    for name in values:
        if name not in specs:
            problems[name] = [f"is not a field of the {ctype.name} type (fields: {', '.join(specs)})"]
    config: dict[str, Any] = {}
    secrets: dict[str, Any] = {}
    for spec in ctype.fields:
        value = values.get(spec.name)
        if value is None:
            if spec.required:
                problems.setdefault(spec.name, []).append("is required")
            elif not spec.secret and spec.default is not None:
                config[spec.name] = spec.default
            continue
        field_problems = check_value(spec, value)
        if field_problems:
            problems.setdefault(spec.name, []).extend(field_problems)
            continue
        (secrets if spec.secret else config)[spec.name] = value
    if not problems and ctype.rules:
        for name, rules in ctype.rules({**config, **secrets}).items():
            problems.setdefault(name, []).extend(rules)
    return config, secrets, problems
