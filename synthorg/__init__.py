"""SynthOrg Integrations: the project package (settings, Celery app, cross-cutting models)."""
from __future__ import annotations

from synthorg.celery import app as celery_app

__all__ = ["celery_app"]
