"""Credentials named by configuration: ``NAME`` or ``NAME_FILE`` (a file holding the value)."""
from __future__ import annotations

import os
from pathlib import Path


def read_env(name: str) -> str | None:
    """The value of ``name`` (``<name>_FILE`` wins), stripped; None when unset or unreadable."""
    file_name = os.environ.get(f"{name}_FILE")
    if file_name:
        try:
            return Path(file_name).read_text(encoding="utf-8").strip() or None
        except OSError:
            return None
    value = os.environ.get(name, "").strip()
    return value or None
