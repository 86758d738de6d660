"""Print the effective `integrations:` configuration (it holds no secrets, only env var names)."""
from __future__ import annotations

import json
from typing import Any

import yaml
from django.core.management.base import BaseCommand, CommandParser

from synthorg.config import as_dict, get_config


class Command(BaseCommand):
    help = "Print the effective configuration after defaults, the YAML file and overrides."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--format", choices=["yaml", "json"], default="yaml")

    def handle(self, *args: Any, format: str, **options: Any) -> None:
        config = get_config()
        data = as_dict(config)
        self.stdout.write(f"# source: {config.source}")
        if format == "json":
            self.stdout.write(json.dumps(data, indent=2, sort_keys=True))
        else:
            self.stdout.write(yaml.safe_dump(data, sort_keys=False).rstrip())
