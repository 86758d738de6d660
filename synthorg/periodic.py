"""Periodic tasks declared in code, with their intervals read from the configuration.

Apps call ``register()`` in ``AppConfig.ready()``; beat's ``SynthorgScheduler`` turns the
registry into django-celery-beat rows each time it starts (update by name: idempotent).
Tasks that are integrations work check ``integrations_enabled()`` first and do nothing
while the layer is switched off.
"""
from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from celery.schedules import schedule as every
from django_celery_beat.schedulers import DatabaseScheduler

from synthorg.config import Config, get_config

logger = logging.getLogger(__name__)

NAME_PREFIX = "synthorg:"


@dataclass(frozen=True)
class PeriodicTask:
    name: str
    task: str
    interval: Callable[[Config], float]
    options: dict[str, Any] | None = None


_registry: dict[str, PeriodicTask] = {}


def register(name: str, task: str, interval: Callable[[Config], float],
             options: dict[str, Any] | None = None) -> None:
    _registry[NAME_PREFIX + name] = PeriodicTask(NAME_PREFIX + name, task, interval, options)


def registered() -> dict[str, PeriodicTask]:
    return dict(_registry)


def beat_schedule(config: Config | None = None) -> dict[str, dict[str, Any]]:
    config = config or get_config()
    schedule = {}
    for entry in _registry.values():
        item: dict[str, Any] = {"task": entry.task, "schedule": every(entry.interval(config))}
        if entry.options:
            item["options"] = entry.options
        schedule[entry.name] = item
    return schedule


def periodic_tasks_sync() -> None:
    """Disable rows for periodic tasks that the code no longer declares."""
    from django_celery_beat.models import PeriodicTask as PeriodicTaskRow

    (PeriodicTaskRow.objects.filter(name__startswith=NAME_PREFIX, enabled=True)
     .exclude(name__in=list(_registry)).update(enabled=False))


class SynthorgScheduler(DatabaseScheduler):
    def setup_schedule(self) -> None:
        self.app.conf.beat_schedule = {**(self.app.conf.beat_schedule or {}), **beat_schedule()}
        periodic_tasks_sync()
        super().setup_schedule()


F = TypeVar("F", bound=Callable[..., Any])


def integrations_enabled() -> bool:
    return get_config().integrations.enabled


def skip_when_disabled(func: F) -> F:
    """For periodic integrations work: do nothing while `integrations.enabled` is false."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not integrations_enabled():
            logger.info("%s skipped: integrations.enabled is false", func.__name__)
            return {"skipped": "integrations_disabled"}
        return func(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
