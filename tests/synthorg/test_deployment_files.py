"""docker-compose.yml cannot run here (no Docker engine): check it against the README instead."""
from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
README = (ROOT / "README.md").read_text()


def test_compose_has_the_five_services_with_health_checks() -> None:
    services = COMPOSE["services"]
    assert set(services) == {"postgres", "redis", "web", "worker", "beat"}
    assert all("healthcheck" in service for service in services.values())


def test_compose_commands_are_the_readme_commands() -> None:
    for name in ("web", "worker", "beat"):
        assert f"| `{name}` | `{COMPOSE['services'][name]['command']}` |" in README


def test_compose_environment_is_documented_in_readme() -> None:
    env = COMPOSE["services"]["web"]["environment"]
    for name in env:
        assert f"`{name}`" in README, name
    assert env["DATABASE_URL"].startswith("postgres://") and env["REDIS_URL"].startswith("redis://")


def test_compose_requires_the_secrets_instead_of_defaulting_them() -> None:
    env = COMPOSE["services"]["web"]["environment"]
    assert re.fullmatch(r"\$\{SECRET_KEY:\?.+\}", env["SECRET_KEY"])
    assert re.fullmatch(r"\$\{SYNTHORG_MASTER_KEY:\?.+\}", env["SYNTHORG_MASTER_KEY"])


def test_dockerfile_collects_static_and_runs_gunicorn_unprivileged() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "collectstatic --noinput" in dockerfile
    assert "USER app" in dockerfile
    assert '"gunicorn", "synthorg.wsgi"' in dockerfile


def test_readme_names_the_two_commands() -> None:
    assert "make run" in README and "make test" in README
