#!/usr/bin/env python
"""Django's command-line utility for the sandbox: ``python sandbox/manage.py <command>``."""

import os
import sys
from pathlib import Path


def main() -> None:
    # The repository root, not this folder, goes first on the path: the project
    # is the package ``sandbox`` and its settings import ``tools.postgres``.
    sys.path[0] = str(Path(__file__).resolve().parent.parent)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sandbox.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
