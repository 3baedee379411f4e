"""Time retention of one month's partition: ``python -m tests.retention_benchmark [--rows N]``.

Creates a throwaway database (``<NAME>_retention_benchmark``, beside the one
``DATABASE_URL`` names) whose log is partitioned by month, fills one old
month's partition with ``--rows`` synthetic entries (default 1,000,000,
shaped like the seal benchmark's) plus a few in the next month, VACUUM
ANALYZEs it, then times:

* ``audit_log_retention --archive DIR``: archive (COPY to gzip'd CSV,
  fsync, re-read and verify), then detach and drop, of that month;
* ``audit_log_archive_load``: verify the archive and load it back;
* ``audit_log_retention`` without an archive: detach and drop alone.

It prints each time, the detach-and-drop time the command reports, and the
archive's size beside the partition's. Not part of the test suite. ``--keep``
leaves the database for a look with psql.
"""

from __future__ import annotations

import argparse
import io
import os
import re
import tempfile
import time
from datetime import datetime
from pathlib import Path

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

import django

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import override_settings  # noqa: E402

from audit_log import partitions  # noqa: E402
from tests.benchmark_db import create_database, drop_database  # noqa: E402
from tests.testapp.models import AuditLogEntry  # noqa: E402

MONTH = "2024-01-01T00:00:00+00:00"
NEXT = "2024-02-01T00:00:00+00:00"

FILL = """
INSERT INTO {table} (content_type_id, object_id, table_name, action, at, changes, transaction_id,
                     context_id, context_type, context, performed_by_id, performed_by_label, tenant)
SELECT NULL, (n %% 1000)::text, 'testapp_invoice', 'UPDATE',
       %(start)s::timestamptz + n * (interval '30 days' / %(rows)s),
       CASE WHEN n %% 3 = 0 THEN jsonb_build_object('status', jsonb_build_array('draft', 'sent'))
            WHEN n %% 3 = 1 THEN jsonb_build_object('amount', jsonb_build_array(n, n + 1.25))
            ELSE jsonb_build_object('notes', jsonb_build_array('old text ' || n, 'new text ' || n),
                                    'customer_id', jsonb_build_array(NULL, 7)) END,
       1000000 + n / 3,
       lpad(to_hex(n / 10), 32, '0')::uuid,
       'http-request',
       jsonb_build_object('method', 'POST', 'path', '/admin/testapp/invoice/' || (n %% 1000) || '/change/',
                          'query_params', '{{}}'::jsonb, 'remote_addr', '127.0.0.1'),
       NULL, 'user' || (n %% 10), ''
FROM generate_series(1, %(rows)s) AS n
"""


def command(name: str, *args: str, **options: str) -> tuple[float, str]:
    """Run a management command; return its wall time and output."""
    out = io.StringIO()
    start = time.perf_counter()
    call_command(name, *args, stdout=out, **options)
    return time.perf_counter() - start, out.getvalue()


def fill(rows: int) -> int:
    """Create the two months' partitions, fill the first with ``rows`` entries; return its size in bytes."""
    table = connection.ops.quote_name(AuditLogEntry._meta.db_table)
    with connection.cursor() as cursor:
        for start, end in ((MONTH, NEXT), (NEXT, "2024-03-01T00:00:00+00:00")):
            for statement in partitions.create_partition_statements(
                AuditLogEntry._meta.db_table, datetime.fromisoformat(start), datetime.fromisoformat(end), "month"
            ):
                cursor.execute(statement)
        cursor.execute(FILL.format(table=table), {"rows": rows, "start": MONTH})
        cursor.execute(FILL.format(table=table), {"rows": 10, "start": NEXT})
        cursor.execute(f"VACUUM ANALYZE {table}")
    [january] = [
        p for p in partitions.list_partitions(connection, AuditLogEntry._meta.db_table) if p.name.endswith("p202401")
    ]
    return january.bytes


def main() -> None:
    """Build a partitioned log with one big old month, then time retention and loading it back."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="entries in the month (default 1,000,000)")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    options = parser.parse_args()

    with override_settings(AUDIT_LOG_PARTITIONING="month"):
        old_config = create_database("retention_benchmark")
    try:
        print(f"Filling January 2024 with {options.rows:,} entries ...", flush=True)
        size = fill(options.rows)
        with tempfile.TemporaryDirectory() as directory:
            seconds, out = command("audit_log_retention", before=NEXT, archive=directory)
            drop = float(re.search(r"detach and drop took ([0-9.]+) s", out).group(1))  # type: ignore[union-attr]
            [archive] = Path(directory).glob("*.csv.gz")
            print(f"retention --archive (archive, verify, detach, drop): {seconds:.2f} s; detach+drop {drop:.3f} s")
            print(f"  partition {size / 2**20:.0f} MiB on disk, archive {archive.stat().st_size / 2**20:.0f} MiB")
            seconds, out = command("audit_log_archive_load", str(archive))
            print(f"archive_load (verify, load into a new partition): {seconds:.2f} s")
        seconds, out = command("audit_log_retention", before=NEXT)
        drop = float(re.search(r"detach and drop took ([0-9.]+) s", out).group(1))  # type: ignore[union-attr]
        print(f"retention without archive: {seconds:.2f} s; detach+drop {drop:.3f} s")
    finally:
        drop_database(old_config, keep=options.keep)


if __name__ == "__main__":
    main()
