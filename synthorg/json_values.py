"""JSON values PostgreSQL can hold: bounded nesting, no NUL, no lone surrogate.

Three things valid JSON may carry that break further down (issue 13):

* NUL (``"\\u0000"``): PostgreSQL's text and jsonb refuse it (``UntranslatableCharacter``);
* a lone UTF-16 surrogate (``"\\ud800"``): `json.loads` makes a ``str`` that cannot be encoded
  to UTF-8, so no database, log line or HTTP header can take it;
* deep nesting: Python's parser, its encoder and every recursive walk raise
  ``RecursionError`` near 1,000 levels, long before the body-size limit.

The API refuses all three in one step (`synthorg.parsers.JSONInputParser`); the webhook
receiver, which must store whatever a signed sender meant, keeps the raw body and stores an
escaped copy (`storable_copy`). Every walk here is iterative or runs on a value whose nesting
`nesting_exceeds` has bounded.
"""
from __future__ import annotations

import re
from typing import Any

# NUL and any surrogate code point: json.loads joins a valid surrogate pair into one code
# point, so a surrogate left in a str is always a lone one.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def nesting_exceeds(text: str | bytes, value: Any, limit: int) -> bool:
    """Whether ``value`` (parsed from the JSON ``text``) nests arrays and objects deeper than
    ``limit``. Only a text with more than ``limit`` brackets can (a C-speed count decides for
    almost every body); then the parsed value is walked level by level, iteratively, stopping
    at ``limit``. Python's parser itself refuses nesting near 1,000 with ``RecursionError``:
    callers treat that as "too deep" too."""
    if isinstance(text, bytes):
        opened = text.count(b"[") + text.count(b"{")
    else:
        opened = text.count("[") + text.count("{")
    return opened > limit and depth_exceeds(value, limit)


def depth_exceeds(value: Any, limit: int) -> bool:
    """Whether the parsed JSON ``value`` nests arrays and objects deeper than ``limit``
    (iteratively, level by level, stopping at ``limit``)."""
    # Exact type checks in plain loops: json.loads makes only dicts and lists, and this is
    # several times faster than isinstance in a generator (it runs on large signed bodies).
    level = [value] if type(value) is dict or type(value) is list else []
    depth = 0
    while level:
        depth += 1
        if depth > limit:
            return True
        below: list[Any] = []
        append = below.append
        for node in level:
            for child in (node.values() if type(node) is dict else node):
                kind = type(child)
                if kind is dict or kind is list:
                    append(child)
        level = below
    return False


def unstorable_problem(text: str) -> str | None:
    """What in ``text`` no database can hold, in words, or None."""
    found = _UNSTORABLE.search(text)
    if found is None:
        return None
    if found.group() == "\x00":
        return "must not contain NUL characters (\\u0000)"
    return f"must not contain a lone surrogate (\\u{ord(found.group()):04x}): it is not Unicode text"


def unstorable_path(value: Any, *, root: str = "") -> tuple[str, str] | None:
    """The dotted path (``credentials.token``, ``items.2``) of the first key or string in
    ``value`` that `unstorable_problem` refuses, with the problem; None when all are storable.
    Keys in the path are escaped (`storable_text`), so the path itself can be rendered."""
    stack: list[tuple[str, Any]] = [(root, value)]
    while stack:
        path, node = stack.pop()
        if isinstance(node, str):
            problem = unstorable_problem(node)
            if problem:
                return path or "(body)", problem
        elif isinstance(node, dict):
            children = []
            for key, child in node.items():
                name = storable_text(key) if isinstance(key, str) else str(key)
                child_path = f"{path}.{name}" if path else name
                problem = unstorable_problem(key) if isinstance(key, str) else None
                if problem:
                    return child_path, f"the key {problem}"
                children.append((child_path, child))
            stack.extend(reversed(children))
        elif isinstance(node, list):
            stack.extend(reversed([(f"{path}.{index}" if path else str(index), child)
                                   for index, child in enumerate(node)]))
    return None


def _escape(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def storable_text(text: str) -> str:
    """``text`` with each NUL written as the six characters ``\\u0000`` and each lone
    surrogate as its ``\\udXXX`` escape (what the sender's JSON said), else unchanged."""
    return _UNSTORABLE.sub(_escape, text) if _UNSTORABLE.search(text) else text


def storable_copy(value: Any) -> tuple[Any, bool]:
    """``value`` with `storable_text` applied to every string and key, and whether anything
    changed (unchanged containers are returned as they are). Recursive: call it on values
    whose nesting `nesting_exceeds` has bounded."""
    if isinstance(value, str):
        escaped = storable_text(value)
        return escaped, escaped is not value
    if isinstance(value, dict):
        changed = False
        copy: dict[Any, Any] = {}
        for key, child in value.items():
            new_key = storable_text(key) if isinstance(key, str) else key
            new_child, child_changed = storable_copy(child)
            changed = changed or child_changed or new_key is not key
            # A key that escapes onto an existing one keeps the later value (the raw body has both).
            copy[new_key] = new_child
        return (copy, True) if changed else (value, False)
    if isinstance(value, list):
        items = [storable_copy(child) for child in value]
        if any(changed for _item, changed in items):
            return [item for item, _changed in items], True
        return value, False
    return value, False
