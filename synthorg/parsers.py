"""The one validation step for all JSON the API takes (``DEFAULT_PARSER_CLASSES``).

Before any serializer or service sees a request body, `JSONInputParser` refuses, with 400:

* nesting deeper than `MAX_NESTING` (``json_too_deep``); Python's parser raises
  ``RecursionError`` near 1,000 levels (that was the 500), which is refused the same way;
* any key or string holding NUL or a lone surrogate, and any number beyond a double's range
  (``invalid_character``, ``invalid_number``), naming the field's path (``credentials.token``):
  PostgreSQL can store none of them, a lone surrogate is not Unicode text, and a NUL can go
  into no header, URL or connection string a secret is used in;
* anything that is not JSON (``parse_error``).

Errors are ``{"detail", "code"}`` plus ``"errors": {path: [problem]}`` when a field is named.
"""
from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import IO, Any

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from synthorg.json_values import nesting_exceeds, unstorable_path

# Far beyond any document the API takes (connection metadata, trigger conditions, MCP options).
MAX_NESTING = 64


def _refused(detail: str, code: str, errors: dict[str, list[str]] | None = None) -> Exception:
    # Imported here: synthorg.errors imports DRF's views, whose class body loads this parser.
    from synthorg.errors import BadRequest

    return BadRequest(detail, code=code, errors=errors)


def _reject_constant(value: str) -> Any:
    raise ValueError(f"{value} is not valid JSON")


class _OutOfRange(float):
    """A number literal beyond a double's range, remembered so its path can be named."""


def _parse_float(literal: str) -> float:
    number = float(literal)
    return number if math.isfinite(number) else _OutOfRange(number)


def json_input_check(data: Any, *, root: str = "") -> None:
    """Raise a 400 (`synthorg.errors.BadRequest`) naming the first key, string or number the
    API cannot take."""
    found = unstorable_path(data, root=root)
    if found is not None:
        path, problem = found
        raise _refused(f"{path}: {problem}.", "invalid_character", {path: [problem]})
    out_of_range = _out_of_range_path(data, root)
    if out_of_range is not None:
        problem = "must be a number within a double's range"
        raise _refused(f"{out_of_range}: {problem}.", "invalid_number", {out_of_range: [problem]})


def _out_of_range_path(value: Any, root: str) -> str | None:
    stack: list[tuple[str, Any]] = [(root, value)]
    while stack:
        path, node = stack.pop()
        if isinstance(node, _OutOfRange):
            return path or "(body)"
        if isinstance(node, Mapping):
            stack.extend((f"{path}.{key}" if path else str(key), child) for key, child in node.items())
        elif isinstance(node, list):
            stack.extend((f"{path}.{index}" if path else str(index), child) for index, child in enumerate(node))
    return None


class JSONInputParser(JSONParser):
    def parse(self, stream: IO[bytes] | None, media_type: str | None = None,
              parser_context: Mapping[str, Any] | None = None) -> Any:
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        raw = stream.read() if stream is not None else b""
        try:
            text = raw.decode(encoding)
        except (UnicodeDecodeError, LookupError):
            raise ParseError(f"JSON parse error - the body is not {encoding} text.") from None
        too_deep = _refused(f"The JSON body nests deeper than {MAX_NESTING} levels.", "json_too_deep")
        try:
            data = json.loads(text, parse_constant=_reject_constant, parse_float=_parse_float)
        except RecursionError:
            # Python's parser gives up near 1,000 levels (it was a 500): far past the bound anyway.
            raise too_deep from None
        except ValueError as exc:
            # ValueError's message names a position, never the text itself.
            raise ParseError(f"JSON parse error - {exc}") from None
        if nesting_exceeds(text, data, MAX_NESTING):
            raise too_deep
        json_input_check(data)
        return data
