"""The benchmark (``python -m tests.benchmarks``) runs end to end in smoke mode and prints its tables."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import OperationalError, connection

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def postgres(django_db_blocker):
    """Skip when the PostgreSQL server the benchmark would use cannot be reached."""
    with django_db_blocker.unblock():
        try:
            with connection._nodb_cursor() as cursor:  # the server's maintenance database, as test setup uses
                cursor.execute("SELECT 1")
        except OperationalError as error:
            pytest.skip(f"PostgreSQL is unreachable: {error}")


def test_benchmarks_smoke_run_prints_every_table(postgres):
    # A subprocess, as `make benchmark` runs it: the benchmark creates and drops its own database
    # (test_<NAME>_benchmark_smoke) on the server DATABASE_URL names, beside this run's test database.
    result = subprocess.run(
        [sys.executable, "-m", "tests.benchmarks", "--smoke"],
        cwd=ROOT,
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    output = result.stdout
    assert output.startswith("# PostgreSQL ")
    assert f"Python {sys.version.split()[0]}, {connection.Database.__name__} " in output
    assert "## One HTTP request per write, anonymous" in output
    assert "## Inside audit_context, amortised" in output
    assert "## Reading the log" in output
    requests = output.split("## One HTTP request per write")[1].split("## Inside audit_context")[0]
    rows = [
        line.split("|")[1:3] for line in requests.splitlines() if line.startswith("| ") and "CONN_MAX_AGE" not in line
    ]
    labels = ["create()", "save(), 2 fields changed", "delete()", "GET, only reads"]
    assert [(label.strip(), age.strip()) for label, age in rows] == [
        (label, age) for age in ("0", "None") for label in labels
    ]
    for line in ("| bulk_create 200 rows ", "| QuerySet.update() 200 rows", "| 50 newest entries of 1 object"):
        assert line in output, output
