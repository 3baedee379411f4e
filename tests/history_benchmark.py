"""Time rebuilding states from the log: ``python -m tests.history_benchmark [--rounds N] [--noise N]``.

Creates a throwaway database (``<NAME>_history_benchmark``, beside the one
``DATABASE_URL`` names), migrates it, and writes, through the triggers:

* an invoice with 10,000 entries (its INSERT, then 9,999 UPDATEs of one or
  two columns each, every one its own statement);
* an invoice with 1,000 entries;
* an invoice with 10,000 entries that is then deleted;
* an article with 2,000 link entries (tags added and removed one by one);

beside ``--noise`` entries of other invoices (default 200,000). It then
VACUUM ANALYZEs the log and prints the median and the slowest of
``--rounds`` calls (default 25) of each: ``state_at`` at the end and in the
middle of the long history, of the short one, of the deleted object before
its deletion, and of the article with its tag set; and the number of queries
each makes. Not part of the test suite. ``--keep`` leaves the database.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

import django

django.setup()

from django.db import connection  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402
from django.utils import timezone  # noqa: E402

from audit_log import history  # noqa: E402
from audit_log.context import audit_context  # noqa: E402
from tests.benchmark_db import create_database, drop_database  # noqa: E402
from tests.testapp.models import Article, AuditLogEntry, Invoice, Tag  # noqa: E402

NOISE = """
INSERT INTO testapp_invoice (number, status, amount, notes)
SELECT 'N-' || n, 'draft', n, '' FROM generate_series(1, %(objects)s) AS n;
UPDATE testapp_invoice SET amount = amount + 1, notes = 'changed'
WHERE number LIKE 'N-%%' AND id %% 2 = 0
"""

# Each UPDATE is its own statement, so each writes its own entry, as a request would.
CHANGES = """
DO $$
BEGIN
  FOR i IN 1..{count} LOOP
    IF i % 3 = 0 THEN
      UPDATE testapp_invoice SET status = (ARRAY['draft', 'sent', 'paid'])[1 + (i / 3) % 3], amount = i
      WHERE id = {pk};
    ELSE
      UPDATE testapp_invoice SET amount = i, notes = 'note ' || i WHERE id = {pk};
    END IF;
  END LOOP;
END
$$
"""

LINKS = """
DO $$
BEGIN
  FOR i IN 1..{count} LOOP
    IF i % 2 = 1 THEN
      INSERT INTO testapp_article_tags (article_id, tag_id) VALUES ({pk}, {first} + (i / 2) % {tags})
        ON CONFLICT DO NOTHING;
    ELSE
      DELETE FROM testapp_article_tags WHERE article_id = {pk} AND tag_id = {first} + ((i - 1) / 2) % {tags}
        AND (i / 2) % 5 <> 0;
    END IF;
  END LOOP;
END
$$
"""


def invoice_with(entries: int, number: str) -> Invoice:
    """Create an invoice and change it until it has ``entries`` entries."""
    invoice = Invoice.objects.create(number=number, amount=0)
    with connection.cursor() as cursor:
        cursor.execute(CHANGES.format(count=entries - 1, pk=int(invoice.pk)))
    assert AuditLogEntry.objects.filter(object_id=str(invoice.pk), table_name="testapp_invoice").count() == entries
    return invoice


def timed(label: str, rounds: int, action: Callable[[], Any]) -> None:
    """Print the median and slowest time of ``action`` over ``rounds`` calls, and its queries."""
    action()  # warm: content types, plans
    with CaptureQueriesContext(connection) as queries:
        action()
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        action()
        times.append((time.perf_counter() - start) * 1000)
    print(
        f"  {label}: median {statistics.median(times):.1f} ms, slowest {max(times):.1f} ms, "
        f"{len(queries.captured_queries)} queries",
        flush=True,
    )


def main() -> None:
    """Build the histories, then time rebuilding them."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=25, help="calls timed per case (default 25)")
    parser.add_argument("--noise", type=int, default=200_000, help="entries of other objects (default 200,000)")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    options = parser.parse_args()

    old_config = create_database("history_benchmark")
    try:
        print("Writing the histories ...", flush=True)
        with audit_context("benchmark"):
            with connection.cursor() as cursor:
                cursor.execute(NOISE, {"objects": options.noise * 2 // 3})
            long = invoice_with(10_000, "LONG")
            short = invoice_with(1_000, "SHORT")
            gone = invoice_with(10_000, "GONE")
            gone_pk = gone.pk
            gone.delete()
            tags = [Tag.objects.create(name=f"tag {n}") for n in range(20)]
            article = Article.objects.create(title="Tagged")
            with connection.cursor() as cursor:
                cursor.execute(LINKS.format(count=2_000, pk=int(article.pk), first=int(tags[0].pk), tags=len(tags)))
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE testapp_auditlogentry")
        total = AuditLogEntry.objects.count()
        entries = list(
            AuditLogEntry.objects.filter(object_id=str(long.pk), table_name="testapp_invoice").order_by("id")
        )
        middle = entries[len(entries) // 2]
        deleted = AuditLogEntry.objects.get(object_id=str(gone_pk), table_name="testapp_invoice", action="DELETE")
        links = AuditLogEntry.objects.filter(object_id=str(article.pk), table_name="testapp_article_tags").count()
        state = history.state_at(Article, article.pk, timezone.now())
        assert state is not None
        print(f"Log: {total:,} entries; the article has {links:,} link entries and {len(state.m2m['tags'])} tags now.")
        print(f"state_at, {options.rounds} rounds each:")
        now = timezone.now()
        timed("10,000 entries, now", options.rounds, lambda: long.audit_logs.state_at(now))
        # The DO block wrote every entry in one statement, so they share one ``at``: the middle is
        # reached by entry (state_after folds the entries up to it), not by time.
        timed("10,000 entries, the middle (entry.state_after())", options.rounds, middle.state_after)
        timed("1,000 entries, now", options.rounds, lambda: short.audit_logs.state_at(now))
        last = AuditLogEntry.objects.filter(object_id=str(gone_pk), action="UPDATE").latest("id")
        assert Invoice.audit_state(gone_pk, at=last.at) is not None
        timed(
            "10,000 entries, deleted: before its DELETE",
            options.rounds,
            lambda: Invoice.audit_state(gone_pk, at=last.at),
        )
        timed("10,000 entries, deleted: after (None)", options.rounds, lambda: Invoice.audit_state(gone_pk, at=now))
        timed("entry.state_before() of the DELETE", options.rounds, deleted.state_before)
        timed(f"article with {links:,} link entries, now", options.rounds, lambda: article.audit_logs.state_at(now))
    finally:
        drop_database(old_config, keep=options.keep)


if __name__ == "__main__":
    main()
