"""SynthOrg Integrations: the project package (settings, Celery app, cross-cutting models)."""
from __future__ import annotations

from synthorg.startup import install_excepthook

install_excepthook()

from synthorg.celery import app as celery_app  # noqa: E402

__all__ = ["celery_app"]
