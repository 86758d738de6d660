"""Cards on the admin index: each app registers what an operator should see at a glance.

`synthorg` imports no app code: apps call `register()` in `AppConfig.ready()` with a
function returning a `Card` (a title and numbers, each linking to the filtered list).
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from django.http import HttpRequest

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Stat:
    label: str
    value: int | str
    url: str | None = None
    tone: str = ""  # "", "good", "warn", "bad"


@dataclass(frozen=True)
class Card:
    title: str
    stats: list[Stat] = field(default_factory=list)
    note: str = ""
    order: int = 100


CardBuilder = Callable[[HttpRequest], Card | None]
_builders: dict[str, CardBuilder] = {}


def register(key: str, builder: CardBuilder) -> None:
    _builders[key] = builder


def cards(request: HttpRequest) -> list[Card]:
    built = []
    for key, builder in _builders.items():
        try:
            card = builder(request)
        except Exception:  # one broken card must not take the console down
            logger.exception("dashboard card %s failed", key)
            card = Card(title=key, note="This card could not be computed; see the server log.")
        if card is not None:
            built.append(card)
    return sorted(built, key=lambda c: (c.order, c.title))
