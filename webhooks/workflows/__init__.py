"""Workflows fired by trigger rules, registered in code by name.

A workflow is ``run(event, parameters) -> dict`` (a JSON-able result) with a
``validate(parameters)`` that raises ``ValueError`` on bad parameters when a rule is saved.
Raise ``synthorg.http.TransientError`` (or ``RateLimitExceeded``) for "try again later"; any
other exception fails the run at once.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

Event = Mapping[str, Any]


@dataclass(frozen=True)
class Workflow:
    name: str
    run: Callable[[Event, Mapping[str, Any]], dict[str, Any]]
    validate: Callable[[Mapping[str, Any]], None]
    description: str = ""


_registry: dict[str, Workflow] = {}


def register(workflow: Workflow) -> None:
    _registry[workflow.name] = workflow


def get_workflow(name: str) -> Workflow:
    try:
        return _registry[name]
    except KeyError:
        raise KeyError(f"unknown workflow {name!r}") from None


def registered() -> dict[str, Workflow]:
    return dict(_registry)


def validate_workflow(name: str, parameters: Any) -> None:
    """``ValueError`` naming the problem: unknown workflow or bad parameters."""
    if name not in _registry:
        raise ValueError(f"unknown workflow {name!r}; known: {', '.join(sorted(_registry))}")
    if not isinstance(parameters, Mapping):
        raise ValueError("parameters must be an object")
    _registry[name].validate(parameters)


def _register_builtins() -> None:
    from webhooks.workflows import http_forward, log_event

    register(log_event.WORKFLOW)
    register(http_forward.WORKFLOW)


_register_builtins()
