"""Time sealing and verifying a large log: ``python -m tests.seal_benchmark [--rows N] [--more N]``.

Creates a throwaway database (``<NAME>_seal_benchmark``, beside the one
``DATABASE_URL`` names), migrates it, fills the log with ``--rows`` synthetic
entries (default 1,000,000, shaped like the admin benchmark's: a few changed
fields, a request context, ten users) and VACUUM ANALYZEs it, then times:

* ``audit_log_seal`` of the whole log (``seal_log``, the command's code);
* ``audit_log_verify --full``;
* ``--more`` new entries (default 10,000), their seal, and the default,
  incremental ``audit_log_verify`` (only the new seal is recomputed);
* ``audit_log_verify --full`` again after one entry was changed, which must
  name it.

It prints each time, and the size of the seal tables beside the log's. Not
part of the test suite. ``--keep`` leaves the database for a look with psql.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from typing import Any

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

import django

django.setup()

from django.db import connection  # noqa: E402

from audit_log import seal, seal_verify  # noqa: E402
from audit_log.context import audit_context  # noqa: E402
from audit_log.seal_models import Seal, SealChunk  # noqa: E402
from tests.benchmark_db import create_database, drop_database  # noqa: E402
from tests.testapp.models import AuditLogEntry, Invoice  # noqa: E402

FILL = """
INSERT INTO {table} (content_type_id, object_id, table_name, action, at, changes, transaction_id,
                     context_id, context_type, context, performed_by_id, performed_by_label, tenant)
SELECT NULL, (n %% 1000)::text, 'testapp_invoice', 'UPDATE',
       now() - interval '730 days' + n * (interval '730 days' / %(rows)s),
       CASE WHEN n %% 3 = 0 THEN jsonb_build_object('status', jsonb_build_array('draft', 'sent'))
            WHEN n %% 3 = 1 THEN jsonb_build_object('amount', jsonb_build_array(n, n + 1))
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


def timed(label: str, action: Callable[[], Any]) -> Any:
    """Run ``action``, print how long it took, and return its result."""
    start = time.perf_counter()
    result = action()
    print(f"  {label}: {time.perf_counter() - start:.1f} s", flush=True)
    return result


def sizes() -> str:
    """Return the on-disk sizes of the log and the seal tables."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_size_pretty(pg_total_relation_size(%s)), pg_size_pretty(pg_total_relation_size(%s)"
            " + pg_total_relation_size(%s))",
            [AuditLogEntry._meta.db_table, Seal._meta.db_table, SealChunk._meta.db_table],
        )
        log, seals = cursor.fetchone()
    return f"log {log}, seal tables {seals}"


def main() -> None:
    """Build the log, then time sealing and verifying it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="entries to seal (default 1,000,000)")
    parser.add_argument("--more", type=int, default=10_000, help="entries added before the incremental run")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    options = parser.parse_args()

    old_config = create_database("seal_benchmark")
    try:
        table = connection.ops.quote_name(AuditLogEntry._meta.db_table)
        print(f"Filling the log with {options.rows:,} entries ...", flush=True)
        with connection.cursor() as cursor:
            cursor.execute(FILL.format(table=table), {"rows": options.rows})
            cursor.execute(f"VACUUM ANALYZE {table}")

        print(f"Sealing and verifying {options.rows:,} entries:")
        made = timed("audit_log_seal", lambda: seal.seal_log(wait=0))
        assert made is not None
        assert made.entry_count == options.rows
        report = timed("audit_log_verify --full", lambda: seal_verify.verify_log(full=True))
        assert report.ok
        print(f"  ({sizes()})")

        print(f"{options.more:,} more entries:")
        with audit_context("benchmark"):
            Invoice.objects.bulk_create(Invoice(number=f"B-{n}") for n in range(options.more))
        timed("audit_log_seal", lambda: seal.seal_log(wait=0))
        report = timed("audit_log_verify (incremental)", seal_verify.verify_log)
        assert report.ok
        assert len(report.checked) == 1

        print("One entry changed:")
        with connection.cursor() as cursor:
            cursor.execute("SET audit_log.maintenance = 'on'")
            cursor.execute(f"UPDATE {table} SET changes = '{{}}' WHERE id = %s", [made.last_id // 2])
            cursor.execute("RESET audit_log.maintenance")
        report = timed("audit_log_verify --full", lambda: seal_verify.verify_log(full=True))
        assert [(problem.kind, problem.ids) for problem in report.problems] == [("changed", (made.last_id // 2,))]
        print(f"  found: {report.problems[0].message}")
    finally:
        drop_database(old_config, keep=options.keep)


if __name__ == "__main__":
    main()
