"""Paths a user chooses stay inside the roots the operator allowed (issue 12, section 5).

Every file or directory path that reaches a process or a driver from user input (an MCP
install option such as Memory's ``storage_file`` or Filesystem's ``directories``, the file of
a ``database`` connection of the sqlite dialect) goes through ``confine()``:

* it must be absolute (``~`` is not expanded: whose home would it be?) and free of NUL;
* after ``os.path.realpath`` (symlinks and ``..`` resolved) it must lie under one of
  ``integrations.mcp_catalog.allowed_roots`` (relative entries are under the service's var
  directory; the default is ``var/mcp``);
* it must not be, lie in or contain the service's own files: its var directory (database,
  secret key, broker, static files), its code, the database file and the config file,
  unless the root it lies in is itself strictly inside that protected place (``var/mcp``);
* only then is existence looked at, so a refusal never tells whether something exists
  outside the roots (a probe used to tell whether ``/etc/shadow`` exists).
"""
from __future__ import annotations

import os
from pathlib import Path

from django.conf import settings

from synthorg.config import get_config

ROOTS_KEY = "integrations.mcp_catalog.allowed_roots"


class PathRefused(ValueError):
    """The path breaks the confinement; the message names the rule, never what exists outside."""


def _real(path: str | os.PathLike[str]) -> Path:
    return Path(os.path.realpath(path))


def _within(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def var_dir() -> Path:
    return _real(getattr(settings, "VAR_DIR", Path(settings.BASE_DIR) / "var"))


def allowed_roots() -> list[Path]:
    """The configured roots, resolved (relative entries under the var directory)."""
    base = var_dir()
    return [_real(root if os.path.isabs(root) else base / root)
            for root in get_config().integrations.mcp_catalog.allowed_roots]


def protected_paths() -> list[Path]:
    """The service's own files and directories: never handed to an MCP server or a probe."""
    places: list[str | os.PathLike[str]] = [var_dir(), settings.BASE_DIR]
    for database in settings.DATABASES.values():
        for name in (database.get("NAME"), (database.get("TEST") or {}).get("NAME")):
            if database.get("ENGINE", "").endswith("sqlite3") and name and os.path.isabs(str(name)):
                places.append(str(name))
    config_file = getattr(settings, "SYNTHORG_CONFIG_FILE", None)
    if config_file:
        places.append(config_file)
    return [_real(p) for p in places]


def confine(value: object, *, kind: str = "file") -> Path:
    """The resolved path when ``value`` may be used; ``PathRefused`` otherwise.

    ``kind``: ``file`` (its directory must exist), ``directory`` (must exist), ``existing_file``
    (must exist and be a file), ``any`` (confinement only: a launch re-checks where a path
    leads, and leaves a missing file for the server itself to report).
    """
    if not isinstance(value, str) or not value or "\x00" in value:
        raise PathRefused("must be a non-empty path")
    if not os.path.isabs(value):
        raise PathRefused("must be an absolute path")
    roots = allowed_roots()
    if not roots:
        raise PathRefused(f"no path is allowed until {ROOTS_KEY} names at least one root")
    resolved = _real(value)
    root = next((r for r in roots if _within(resolved, r)), None)
    if root is None:
        raise PathRefused(f"is not under an allowed root ({ROOTS_KEY}; symlinks and '..' resolved)")
    for place in protected_paths():
        inside = _within(resolved, place) and not (root != place and _within(root, place))
        if inside or (place != resolved and _within(place, resolved)):
            raise PathRefused("is or holds one of the service's own files (its var directory, code, "
                              "database or configuration)")
    if kind == "directory" and not resolved.is_dir():
        raise PathRefused("does not exist or is not a directory")
    if kind == "file" and not resolved.parent.is_dir():
        raise PathRefused(f"the directory {str(Path(value).parent)!r} does not exist")
    if kind == "existing_file" and not resolved.is_file():
        raise PathRefused("does not exist or is not a file")
    return resolved
