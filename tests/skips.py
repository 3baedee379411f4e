"""Skips the suite's legs share: what a test needs that a leg may not have."""

from __future__ import annotations

import pytest
from django.db.migrations.loader import MigrationLoader


def require_migrations(app_label: str = "testapp", name: str = "0001_initial") -> None:
    """Skip the calling test under ``pytest --no-migrations`` (a CI leg), where apps have no migrations.

    pytest-django disables migrations only once the test database is set up,
    so this is checked when the test runs, not when it is collected.
    """
    if (app_label, name) not in MigrationLoader(None, ignore_no_migrations=True).disk_migrations:
        pytest.skip("migrations are disabled (pytest --no-migrations)")
