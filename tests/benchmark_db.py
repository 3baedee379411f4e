"""The throwaway database of the benchmark scripts (``tests/*_benchmark.py``), beside ``DATABASE_URL``'s."""

from __future__ import annotations

from typing import Any

from django.db import connection
from django.test.utils import setup_databases, teardown_databases


def create_database(suffix: str) -> Any:
    """Create and migrate ``<NAME>_<suffix>`` and switch the default connection to it; returns the old config."""
    name = connection.settings_dict["NAME"]
    connection.settings_dict.setdefault("TEST", {})["NAME"] = f"{name}_{suffix}"
    return setup_databases(verbosity=0, interactive=False, aliases=["default"])


def drop_database(old_config: Any, *, keep: bool = False) -> None:
    """Drop the database :func:`create_database` made, or with ``keep`` say where it is."""
    if keep:
        print(f"Kept database {connection.settings_dict['NAME']}")
    else:
        teardown_databases(old_config, verbosity=0)
