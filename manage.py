#!/usr/bin/env python
"""Django's command-line utility for SynthOrg Integrations."""
from __future__ import annotations

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "synthorg.settings")
    from django.core.management import execute_from_command_line

    from synthorg.startup import exit_on_configuration_error

    with exit_on_configuration_error():
        execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
