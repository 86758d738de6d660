"""Trigger-rule matching: event-type globs and payload conditions kept as data.

A condition is ``{"path": "pull_request.base.ref", "op": "eq", "value": "main"}``. ``path``
walks dict keys and list indexes separated by dots; ops are ``eq``, ``ne``, ``in`` (value is a
list), ``exists`` (value true/false, default true) and ``glob`` (fnmatch on a string). They are
validated on save and interpreted here; nothing is ever evaluated as code.

Event types: a delivery's ``event_type`` is the path segment, or the provider's event name when
the path says ``auto``. When the payload carries a string ``action`` (GitHub), the rule's
pattern is also matched against ``<event_type>.<action>``, so ``pull_request`` matches every
pull-request event, ``pull_request.opened`` only openings and ``pull_request.*`` any action.
"""
from __future__ import annotations

from collections.abc import Mapping
from fnmatch import fnmatchcase
from typing import Any

OPS = ("eq", "ne", "in", "exists", "glob")
MAX_CONDITIONS = 50
MAX_PATH_SEGMENTS = 32
_MISSING = object()


def validate_conditions(conditions: Any) -> None:
    """Raise ``ValueError`` naming the first broken condition."""
    if not isinstance(conditions, list):
        raise ValueError("must be a list of {path, op, value} objects")
    if len(conditions) > MAX_CONDITIONS:
        raise ValueError(f"at most {MAX_CONDITIONS} conditions")
    for index, condition in enumerate(conditions):
        where = f"condition {index}"
        if not isinstance(condition, Mapping):
            raise ValueError(f"{where}: must be an object with path, op and value")
        unknown = set(condition) - {"path", "op", "value"}
        if unknown:
            raise ValueError(f"{where}: unknown keys {', '.join(sorted(unknown))}")
        path = condition.get("path")
        if not isinstance(path, str) or not path or any(not part for part in path.split(".")):
            raise ValueError(f"{where}: path must be a dotted path such as pull_request.base.ref")
        if len(path.split(".")) > MAX_PATH_SEGMENTS:
            raise ValueError(f"{where}: path has more than {MAX_PATH_SEGMENTS} segments")
        op = condition.get("op")
        if op not in OPS:
            raise ValueError(f"{where}: op must be one of {', '.join(OPS)}")
        value = condition.get("value", _MISSING)
        if op == "in" and not isinstance(value, list):
            raise ValueError(f"{where}: op 'in' needs a list value")
        if op == "glob" and not isinstance(value, str):
            raise ValueError(f"{where}: op 'glob' needs a string value")
        if op == "exists" and value is not _MISSING and not isinstance(value, bool):
            raise ValueError(f"{where}: op 'exists' takes true or false")
        if op in {"eq", "ne"} and value is _MISSING:
            raise ValueError(f"{where}: op {op!r} needs a value")


def resolve(payload: Any, path: str) -> Any:
    node = payload
    for part in path.split("."):
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return _MISSING
    return node


def condition_holds(condition: Mapping[str, Any], payload: Any) -> bool:
    found = resolve(payload, condition["path"])
    op = condition["op"]
    value = condition.get("value")
    if op == "exists":
        return (found is not _MISSING) == (True if value is None else value)
    if found is _MISSING:
        return op == "ne"
    if op == "eq":
        return bool(found == value and type(found) is type(value))
    if op == "ne":
        return not (found == value and type(found) is type(value))
    if op == "in":
        return any(found == item and type(found) is type(item) for item in value)
    if op == "glob":
        return isinstance(found, str) and fnmatchcase(found, value)
    return False


def event_type_matches(pattern: str, event_type: str, payload: Any) -> bool:
    if fnmatchcase(event_type, pattern):
        return True
    action = payload.get("action") if isinstance(payload, Mapping) else None
    return isinstance(action, str) and bool(action) and fnmatchcase(f"{event_type}.{action}", pattern)


def conditions_hold(conditions: list[Mapping[str, Any]], payload: Any) -> bool:
    return all(condition_holds(condition, payload) for condition in conditions)
