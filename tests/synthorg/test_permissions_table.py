"""The README's permission table ("Security model") says what `synthorg.permissions.ACTIONS` does."""
from __future__ import annotations

import re
from pathlib import Path

from synthorg import permissions

README = Path(__file__).resolve().parents[2] / "README.md"


def _section() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index("## Security model")
    return text[start:text.index("\n## ", start + 1)]


def test_every_action_has_a_row_with_what_it_needs() -> None:
    section = _section()
    for action, need in permissions.ACTIONS.items():
        assert f"| `{action}` | `{need.describe()}` |" in section, action


def test_the_table_names_no_action_that_does_not_exist() -> None:
    rows = re.findall(r"^\| `([a-z_.]+)` \|", _section(), re.M)
    assert set(rows) == set(permissions.ACTIONS)
