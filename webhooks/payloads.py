"""A delivery's body as the sender meant it and as PostgreSQL stores it.

A signed, well-formed JSON or form body is accepted whatever its strings hold (issue 13), so a
body is read into two views:

* ``value``: what the sender meant, exactly as `json.loads` / `parse_qsl` read it; NUL and
  lone surrogates included. Trigger conditions and workflow runs see this one.
* ``storable``: the same payload with each NUL written as the six characters ``\\u0000`` and
  each lone surrogate as its ``\\udXXX`` escape (keys too). This is `Delivery.payload`;
  `Delivery.payload_escaped` says it differs from the sender's, and `Delivery.body` keeps the
  raw bytes, from which `payload_from_delivery` reads ``value`` again.

In both views a number beyond a double's range (``1e400``: Python reads infinity, which no
JSON encoder may write) or an integer longer than Python converts (4,300 digits) is kept as
its literal text, and the payload counts as escaped.

Nesting deeper than `MAX_NESTING` is refused (400), so nothing that later encodes or walks the
payload (the database adapter, the bus, `http_forward`, the admin) meets a ``RecursionError``.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from synthorg.json_values import nesting_exceeds, storable_copy

# Far beyond any provider's payload (GitHub's and Slack's nest fewer than 20 levels) and far
# below Python's recursion limit, which every parse, walk and encode of the payload shares.
MAX_NESTING = 256
# What can produce NUL or a lone surrogate: a \u escape in JSON; %00 or a raw NUL in a form.
_JSON_ESCAPES = re.compile(r"\\u(?:0000|[dD][89a-fA-F])")


@dataclass(frozen=True)
class Payload:
    value: dict[str, Any]
    storable: dict[str, Any]
    escaped: bool


class _Parse:
    """One body's parse; remembers whether a number had to be kept as its literal text."""

    def __init__(self) -> None:
        self.literal_numbers = False

    def parse_float(self, literal: str) -> float | str:
        number = float(literal)
        if math.isfinite(number):
            return number
        self.literal_numbers = True
        return literal

    def parse_int(self, literal: str) -> int | str:
        try:
            return int(literal)
        except ValueError:  # more digits than Python converts (sys.get_int_max_str_digits)
            self.literal_numbers = True
            return literal

    def json_object(self, text: str) -> dict[str, Any] | None:
        try:
            value = json.loads(text, parse_constant=_reject_constant, parse_float=self.parse_float)
        except RecursionError:  # nested near Python's limit
            return None
        except ValueError as exc:
            if "integer string conversion" not in str(exc):
                return None
            # An integer of thousands of digits is still JSON: parse again, keeping it as text
            # (only then: a hook on every integer would slow down every body).
            try:
                value = json.loads(text, parse_constant=_reject_constant, parse_float=self.parse_float,
                                   parse_int=self.parse_int)
            except (ValueError, RecursionError):
                return None
        if not isinstance(value, dict) or nesting_exceeds(text, value, MAX_NESTING):
            return None
        return value


def _reject_constant(value: str) -> Any:
    raise ValueError(f"{value} is not JSON")


def payload_parse(body: bytes, content_type: str) -> Payload | None:
    """A JSON object, or a form body (Slack, GitHub's form option); None when neither."""
    media = content_type.split(";", 1)[0].strip().lower()
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return None
    parse = _Parse()
    if media == "application/x-www-form-urlencoded":
        try:
            pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text), max_num_fields=1000)
        except ValueError:
            return None
        fields: dict[str, Any] = {}
        for key, value in pairs:
            if key in fields:
                existing = fields[key]
                fields[key] = [*existing, value] if isinstance(existing, list) else [existing, value]
            else:
                fields[key] = value
        if set(fields) == {"payload"} and isinstance(fields["payload"], str):
            # Slack interactivity and GitHub's form content type: one `payload` field of JSON.
            inner = fields["payload"]
            return _payload(parse.json_object(inner), parse, maybe_unstorable=bool(_JSON_ESCAPES.search(inner))
                            or "\x00" in inner)
        # parse_qsl decodes with errors="replace": a form yields NULs, never a surrogate.
        return _payload(fields or None, parse, maybe_unstorable="\x00" in text or "%00" in text)
    return _payload(parse.json_object(text), parse, maybe_unstorable=bool(_JSON_ESCAPES.search(text)))


def _payload(value: dict[str, Any] | None, parse: _Parse, *, maybe_unstorable: bool) -> Payload | None:
    if value is None:
        return None
    if not maybe_unstorable:
        # The common case costs no walk over the payload.
        return Payload(value, value, parse.literal_numbers)
    storable, changed = storable_copy(value)
    return Payload(value, storable, changed or parse.literal_numbers)


def payload_from_delivery(*, payload: dict[str, Any], escaped: bool, body: bytes | memoryview,
                          content_type: str) -> dict[str, Any]:
    """The payload as the sender meant it: the stored one, or, when it was escaped, the raw
    body read again."""
    if not escaped:
        return payload
    parsed = payload_parse(bytes(body), content_type)
    return payload if parsed is None else parsed.value
