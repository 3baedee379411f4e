"""Measure the log at 10^5, 10^6 and 10^7 entries, unpartitioned and partitioned by month (issue 11).

Run ``python -m tests.scale_benchmark`` (``--sizes 100000,1000000``,
``--layouts unpartitioned``, ``--rounds N``, ``--explain``; ``--help`` for the
rest). It is not a test module (pytest collects ``test_*.py`` only) and CI does
not run it: both layouts up to 10^7 entries took about 10 minutes on a quiet
2-core machine (an hour on a busy one) and need ~15 GB of disk at peak.

For each layout it creates a throwaway database (``<NAME>_scale_<layout>``
beside ``DATABASE_URL``'s ``NAME``; the partitioned one is migrated with
``AUDIT_LOG_PARTITIONING = "month"`` and given monthly partitions over the
whole span), measures the write cost on the empty log, then grows the log to
each size in turn (one server-side ``INSERT ... SELECT generate_series`` per
million entries, see ``tests/admin/benchmark_fill.py``; then ``VACUUM
ANALYZE``) and at each size measures, medians of ``--rounds`` rounds:

* admin pages as a superuser through the test client: the History tab of the
  hot invoice (1 entry in ``--hot-every``) at its newest, middle and oldest
  page; the changelist unfiltered and filtered by user, action, model +
  object, transaction, context, a day a year ago; the entry page;
* ``list(obj.audit_logs.all()[:50])`` of the hot invoice;
* the write cost, with ``tests/benchmarks.py``'s machinery, audited model
  against the same model without triggers: ``create()``, one per request
  through the real ``RequestContextMiddleware`` (``CONN_MAX_AGE = None``,
  anonymous; per request), and ``QuerySet.update()`` of 10,000 rows inside one
  ``audit_context`` (amortised: one statement, 10,000 entries); each ratio is
  compared with the same ratio on the empty log;
* partitioned: dropping the oldest month's partition (``audit_log.retention``:
  record, detach, drop), whose rows are then no longer generated.

Entries' ``at`` spread over ``--span-days`` (900: ~30 monthly partitions)
before the moment each growth step runs, so each step's rows interleave in
time with the earlier steps' (three runs of time-ordered rows per partition).
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Any

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

import django

django.setup()

from django.db import connection  # noqa: E402
from django.test.utils import override_settings  # noqa: E402
from django.utils import timezone  # noqa: E402

from audit_log import partitions, retention  # noqa: E402
from audit_log.context import audit_context  # noqa: E402
from tests.admin import benchmark_fill as bench  # noqa: E402
from tests.benchmark_db import create_database, drop_database  # noqa: E402
from tests.benchmarks import FULL, Scenarios, Site, print_table, serve_alternating, use_max_age, values  # noqa: E402
from tests.factories import UserFactory  # noqa: E402
from tests.testapp.models import AuditLogEntry, BenchAudited, BenchPlain, BenchTarget  # noqa: E402

LAYOUTS = {"unpartitioned": None, "partitioned": "month"}
#: The pages of issue 11 (and the context filter), as named in tests/admin/benchmark_fill.admin_pages().
PAGES = (
    "history, newest page",
    "history, middle page",
    "history, oldest page",
    "log, unfiltered",
    "log, user",
    "log, action",
    "log, model + object id",
    "log, transaction",
    "log, context id",
    "log, one day",
    "entry page",
)
FETCH = "obj.audit_logs.all()[:50]"
BULK = 10_000  # rows of the QuerySet.update() scenario
CHUNK = 1_000_000  # entries per INSERT ... SELECT
TARGET_MS = 100
TABLE = AuditLogEntry._meta.db_table


@dataclass
class Measured:
    """What one size gave."""

    entries: int
    fill_seconds: float = 0.0
    vacuum_seconds: float = 0.0
    megabytes: float = 0.0
    pages: dict[str, tuple[float, float, int]] = field(default_factory=dict)  # seconds, of which SQL, queries
    create: tuple[float, float] = (0.0, 0.0)  # per request: plain, audited seconds
    update: tuple[float, float] = (0.0, 0.0)
    drop: str = "-"


class Writes:
    """The write scenarios of ``tests/benchmarks.py``, run against the log as it is."""

    def __init__(self, requests: int, chunk: int) -> None:
        self.requests, self.chunk = requests, chunk
        self.user = UserFactory(username="bench-writer")
        self.target = BenchTarget.objects.create(name="target")
        self.site = Site("", self.target)
        self.scenarios = Scenarios(self.target, self.user, FULL)
        BenchPlain.objects.bulk_create(BenchPlain(**values(i, self.target)) for i in range(BULK))
        with audit_context("setup", performed_by=self.user):
            BenchAudited.objects.bulk_create(BenchAudited(**values(i, self.target)) for i in range(BULK))

    def create_requests(self) -> tuple[float, float]:
        """Serve ``requests`` create() requests per side, alternating every ``chunk``; return seconds per request."""
        paths = {kind: [f"/bench/{kind}/create/"] * self.requests for kind in ("plain", "audited")}
        return serve_alternating(self.site, paths, self.requests, self.chunk, None)

    def measure(self, rounds: int) -> tuple[tuple[float, float], tuple[float, float]]:
        """Return the medians of (plain, audited) seconds: per create() request, per update() of 10,000 rows."""
        use_max_age(None)  # one persistent connection: the write, not connecting, is measured
        creates, updates = [], []
        try:
            self.create_requests()  # warm up: middleware chain, URL resolver, plans
            for _ in range(rounds):
                self._keep(BULK)
                creates.append(self.create_requests())
                self._keep(BULK)
                updates.append(self.scenarios.update())
        finally:
            self._keep(BULK)
            use_max_age(0)

        def medians(pairs: list[tuple[float, float]]) -> tuple[float, float]:
            return statistics.median(p for p, _ in pairs), statistics.median(a for _, a in pairs)

        return medians(creates), medians(updates)

    def _keep(self, rows: int) -> None:
        """Delete the rows the create() requests added, so update() always changes ``rows`` rows."""
        for model in (BenchPlain, BenchAudited):
            last = model.objects.order_by("pk").values_list("pk", flat=True)[rows - 1]
            with audit_context("benchmark", performed_by=self.user):
                model.objects.filter(pk__gt=last).delete()


class Log:
    """The growing log of one layout: its objects, the next entry number, and the oldest time generated."""

    def __init__(self, interval: str | None, span: datetime.timedelta, hot_every: int) -> None:
        self.interval, self.hot_every = interval, hot_every
        self.objects = bench.create_objects(users=20)
        self.next = 1
        self.start = timezone.now() - span
        if interval:
            # Partitions over the whole span (create_partitions() makes the one of `now` and `ahead` more).
            months = span.days // 28 + 3
            partitions.create_partitions(connection, TABLE, interval, ahead=months, now=self.start)

    def grow(self, size: int, chunk: int = CHUNK) -> tuple[int, float, float]:
        """Add synthetic entries until the log holds ``size``; return the count and the seconds to fill and vacuum."""
        have = AuditLogEntry.objects.count()
        started = time.perf_counter()
        end = timezone.now()
        first, last = self.next, self.next + max(0, size - have) - 1
        for low in range(first, last + 1, chunk):
            high = min(low + chunk - 1, last)
            # Each chunk takes its slice of [start, end], so the whole step lies in time order on disk.
            share = (end - self.start) / (last - first + 1)
            bench.insert_entries(
                self.objects,
                low,
                high,
                hot_every=self.hot_every,
                span=share * (high - low + 1),
                end=self.start + share * (high - first + 1),
                mix=bench.REALISTIC,
            )
            print(f"    {high - first + 1:,} / {last - first + 1:,} entries", file=sys.stderr, flush=True)
        self.next = last + 1
        filled = time.perf_counter() - started
        started = time.perf_counter()
        bench.vacuum_analyze()
        return have + last - first + 1, filled, time.perf_counter() - started

    def drop_oldest(self) -> str:
        """Drop the oldest month's partition through ``audit_log.retention``; later steps generate no rows there."""
        oldest = next(p for p in partitions.list_partitions(connection, TABLE) if not p.is_default)
        started = time.perf_counter()
        with audit_context("retention"):
            dropped = retention.drop_partition(connection.alias, AuditLogEntry, oldest, None)
        total = time.perf_counter() - started
        assert oldest.end is not None
        self.start = max(self.start, oldest.end)
        took = f"{total * 1000:.0f} ms in all, detach + drop {dropped.seconds * 1000:.0f} ms"
        return f"{oldest.name}: {dropped.entries:,} entries, {took} (audit_log.retention.drop_partition)"


def table_megabytes() -> float:
    """Return the log's size with indexes and TOAST (its partitions' too)."""
    with connection.cursor() as cursor:
        cursor.execute(
            # pg_partition_tree() gives no rows for a table that is not partitioned.
            "SELECT coalesce(sum(pg_total_relation_size(relid)), pg_total_relation_size(%s::regclass)) "
            "FROM pg_partition_tree(%s::regclass)",
            [connection.ops.quote_name(TABLE)] * 2,
        )
        return float(cursor.fetchone()[0]) / 2**20


def time_pages(log: Log, rounds: int, explain: bool) -> dict[str, tuple[float, float, int]]:
    """Time each page of :data:`PAGES` and the fetch of :data:`FETCH`; return median seconds and queries by name."""
    hot = log.objects.hot
    middle_id, newest_id = bench.hot_entry_ids(log.objects)
    entry = AuditLogEntry.objects.get(pk=newest_id)
    day = timezone.localdate() - datetime.timedelta(days=365)
    urls = bench.admin_pages(hot, middle_id, entry, day)
    client = bench.superuser_client()
    results: dict[str, tuple[float, float, int]] = {}
    for name in PAGES:
        assert client.get(urls[name]).status_code == 200, urls[name]  # warm: templates, content types, plans
        results[name] = bench.measure_with_sql(lambda name=name: client.get(urls[name]), rounds)
        seconds, sql_seconds, queries = results[name]
        print(
            f"    {name:<26} {seconds * 1000:9.1f} ms, SQL {sql_seconds * 1000:7.1f} ms, {queries:3} queries",
            file=sys.stderr,
            flush=True,
        )
        if explain and seconds * 1000 > TARGET_MS:
            print(f"\n  EXPLAIN ANALYZE, {name} ({seconds * 1000:.0f} ms), {urls[name]}:")
            bench.explain_slow(client, urls[name], threshold_ms=10)

    def fetch() -> None:
        assert len(list(hot.audit_logs.all()[:50])) == 50

    fetch()
    results[FETCH] = bench.measure_with_sql(fetch, rounds)
    return results


def run_layout(layout: str, sizes: list[int], options: argparse.Namespace) -> tuple[Measured, list[Measured]]:
    """Measure the empty log, then each size; return what each gave."""
    interval = LAYOUTS[layout]
    with override_settings(AUDIT_LOG_PARTITIONING=interval):
        old = create_database(f"scale_{layout}")
        try:
            assert partitions.is_partitioned(connection, TABLE) == bool(interval), "the layout was not created"
            log = Log(interval, datetime.timedelta(days=options.span_days), options.hot_every)
            writes = Writes(options.requests, options.chunk)
            empty = Measured(AuditLogEntry.objects.count())
            print(f"\n# {layout}: empty log ({empty.entries:,} set-up entries), write cost", file=sys.stderr)
            empty.create, empty.update = writes.measure(options.write_rounds)
            with connection.cursor() as cursor:  # the measurement's entries out: the sizes count synthetic ones
                cursor.execute(f"TRUNCATE {connection.ops.quote_name(TABLE)}")
            results = []
            for size in sizes:
                print(f"\n# {layout}: growing the log to {size:,} entries", file=sys.stderr, flush=True)
                measured = Measured(*log.grow(size))
                measured.megabytes = table_megabytes()
                print(
                    f"# {layout}, {measured.entries:,} entries ({measured.megabytes:,.0f} MB): filled in "
                    f"{measured.fill_seconds:.0f} s, VACUUM ANALYZE {measured.vacuum_seconds:.0f} s",
                    flush=True,
                )
                measured.pages = time_pages(log, options.rounds, options.explain)
                measured.create, measured.update = writes.measure(options.write_rounds)
                if interval:
                    measured.drop = log.drop_oldest()
                    print(f"# {layout}, {measured.entries:,} entries: dropped {measured.drop}", flush=True)
                results.append(measured)
        finally:
            drop_database(old, keep=options.keep)
    return empty, results


def short(number: int) -> str:
    """Return ``10^7`` for a power of ten, else the number with separators."""
    power = len(str(number)) - 1
    return f"10^{power}" if number == 10**power else f"{number:,}"


def report(layout: str, empty: Measured, results: list[Measured]) -> None:
    """Print the pages table (with the growth column), the write-cost table and the partition drops."""
    first, last = results[0], results[-1]
    header = ["page (median)"]
    for each in results:
        header += [f"{short(each.entries)} ms", "SQL ms", "queries"]
    header += [
        f"growth {short(last.entries)} / {short(first.entries)}",
        "SQL growth",
        f"< {TARGET_MS} ms at {short(last.entries)}",
    ]
    rows = []
    for name in (*PAGES, FETCH):
        row: list[Any] = [name]
        for each in results:
            seconds, sql_seconds, queries = each.pages[name]
            row += [f"{seconds * 1000:.1f}", f"{sql_seconds * 1000:.1f}", queries]
        growth = last.pages[name][0] / first.pages[name][0]
        sql_growth = last.pages[name][1] / max(first.pages[name][1], 1e-6)
        row += [f"{growth:.2f}x", f"{sql_growth:.2f}x", "yes" if last.pages[name][0] * 1000 < TARGET_MS else "NO"]
        rows.append(row)
    print_table(
        f"## {layout}: admin pages and obj.audit_logs, superuser, median ms of the rounds (SQL ms: the page's "
        "queries, as Django's debug cursor times them)",
        header,
        rows,
    )

    def ratio(pair: tuple[float, float]) -> float:
        return pair[1] / pair[0]

    rows = []
    for each in (empty, *results):
        label = "empty" if each is empty else f"{each.entries:,}"
        cells: list[Any] = [label]
        for name in ("create", "update"):
            pair = getattr(each, name)
            vs_empty = ratio(pair) / ratio(getattr(empty, name))
            cells += [f"{pair[0] * 1000:.2f}", f"{pair[1] * 1000:.2f}", f"{ratio(pair):.2f}x", f"{vs_empty:.2f}"]
        rows.append(cells)
    print_table(
        f"## {layout}: write cost, audited vs the same model without triggers (median ms); "
        "vs empty = ratio / ratio on the empty log (target <= 1.10)",
        [
            "log entries",
            "create() per request, plain",
            "audited",
            "ratio",
            "vs empty",
            f"update() {BULK:,} rows amortised, plain",
            "audited",
            "ratio",
            "vs empty",
        ],
        rows,
    )
    print_table(
        f"## {layout}: generating the log",
        ["log entries", "fill s", "VACUUM ANALYZE s", "size MB", "oldest partition dropped (target < 1 s)"],
        [
            [f"{e.entries:,}", f"{e.fill_seconds:.0f}", f"{e.vacuum_seconds:.0f}", f"{e.megabytes:,.0f}", e.drop]
            for e in results
        ],
    )


def main(argv: list[str] | None = None) -> None:
    """Run every layout at every size and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100000,1000000,10000000", help="log sizes, ascending, comma-separated")
    parser.add_argument("--layouts", default=",".join(LAYOUTS), help="unpartitioned, partitioned or both")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of each page")
    parser.add_argument("--write-rounds", type=int, default=5, help="rounds of the write scenarios")
    parser.add_argument("--requests", type=int, default=300, help="create() requests per side and round")
    parser.add_argument("--chunk", type=int, default=100, help="plain and audited requests alternate every N")
    parser.add_argument("--hot-every", type=int, default=100, help="one entry in N is the hot invoice's")
    parser.add_argument("--span-days", type=int, default=900, help="how far back the entries go")
    parser.add_argument("--explain", action="store_true", help=f"EXPLAIN ANALYZE the pages over {TARGET_MS} ms")
    parser.add_argument("--keep", action="store_true", help="keep the databases (and say where they are)")
    options = parser.parse_args(argv)
    sizes = [int(size) for size in options.sizes.split(",")]
    layouts = options.layouts.split(",")
    if sizes != sorted(sizes) or any(layout not in LAYOUTS for layout in layouts):
        parser.error(f"--sizes must ascend; --layouts takes {', '.join(LAYOUTS)}")
    with connection._nodb_cursor() as cursor:  # the server's maintenance database: NAME need not exist
        cursor.execute("SELECT version(), current_setting('shared_buffers')")
        version, buffers = cursor.fetchone()
    print(f"# {version}, shared_buffers {buffers}; {os.cpu_count()} CPUs")
    print(f"# Django {django.get_version()}, Python {sys.version.split()[0]}, {connection.Database.__name__}")
    print(
        f"# {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC; {options.rounds} rounds of each page, "
        f"{options.write_rounds} of each write scenario ({options.requests} requests per side); medians",
        flush=True,
    )
    for layout in layouts:
        empty, results = run_layout(layout, sizes, options)
        report(layout, empty, results)


if __name__ == "__main__":
    main()
