"""Startup failures that must read as one clear line, not a traceback wall.

Settings raise ``ConfigurationError`` for problems found while importing (a missing
production ``SECRET_KEY``, a malformed ``DATABASE_URL``); every entry point (manage.py,
wsgi, the Celery worker and beat) turns it into one line on stderr and exit code 2.
Problems found by system checks (YAML schema, master key) are reported the same way by
``check_or_exit()``, which processes that do not run Django's checks call at boot.
"""
from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

EXIT_CODE = 2


class ConfigurationError(Exception):
    """A configuration problem that must stop the process: message says what and how to fix."""


def fail(message: str) -> None:
    sys.stderr.write(f"synthorg: configuration error: {message}\n")
    sys.stderr.flush()
    raise SystemExit(EXIT_CODE)


@contextlib.contextmanager
def exit_on_configuration_error() -> Iterator[None]:
    try:
        yield
    except ConfigurationError as exc:
        fail(str(exc))


def check_or_exit() -> None:
    """Run the system checks (as ``manage.py check`` does) and stop on any error."""
    from django.core import checks

    messages = checks.run_checks(include_deployment_checks=False)
    errors = [m for m in messages if m.level >= checks.ERROR and not m.is_silenced()]
    if errors:
        for message in errors:
            hint = f" Hint: {message.hint}" if message.hint else ""
            sys.stderr.write(f"synthorg: {message.id}: {message.msg}{hint}\n")
        sys.stderr.flush()
        raise SystemExit(EXIT_CODE)


def install_excepthook() -> None:
    """Processes we do not start ourselves (the celery CLI) also print one line, not a traceback."""
    previous = sys.excepthook

    def hook(exc_type: type[BaseException], exc: BaseException, tb: object) -> None:
        if isinstance(exc, ConfigurationError):
            sys.stderr.write(f"synthorg: configuration error: {exc}\n")
            sys.stderr.flush()
            return
        previous(exc_type, exc, tb)  # type: ignore[arg-type]

    sys.excepthook = hook
