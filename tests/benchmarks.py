"""Benchmark the write path: a plain model against the same model audited, in one run.

Run ``python -m tests.benchmarks`` (``--rounds N``, default 7). It uses
``DATABASE_URL`` when set, else an embedded PostgreSQL, and a throwaway test
database. Both models have the same eight columns (char, text, int, decimal,
bool, datetime, foreign key, nullable char); the audited one is written inside
an active audit context, the plain one without any. Within each round the two
alternate (every 200 operations in the single-row scenarios, switching which
goes first), and the table reports the medians over rounds and their ratio.
Single-row scenarios run before the 10,000-row ones in the same database
session, so a plan cached for one row (see ``audit_log.sql.FUNCTION_SETTINGS``)
would show up as a slow bulk scenario.

It also counts the SQL statements the request middleware adds, with
``CONN_MAX_AGE = 0`` and with persistent connections.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

import django

django.setup()

from django.core.handlers.wsgi import WSGIHandler  # noqa: E402
from django.db import connection, connections  # noqa: E402
from django.db.models import F  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext, modify_settings, setup_databases, teardown_databases  # noqa: E402

from audit_log.context import audit_context  # noqa: E402
from tests.factories import UserFactory  # noqa: E402
from tests.testapp.models import AuditLogEntry, BenchAudited, BenchPlain, BenchTarget  # noqa: E402
from tests.wsgi import wsgi_request  # noqa: E402

SINGLE = 2_000
BULK = 10_000
LOG_SIZE = 100_000
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def values(i: int, target: BenchTarget) -> dict[str, Any]:
    return {
        "title": f"title {i}",
        "body": f"some longer body text for row {i} " * 3,
        "quantity": i,
        "price": Decimal(i) / 4,
        "active": i % 2 == 0,
        "created": NOW,
        "target": target,
        "note": None,
    }


def timed(action: Callable[[], Any]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


CHUNK = 200  # single-row scenarios alternate plain and audited every CHUNK operations


class Scenarios:
    """The scenarios. Each returns the seconds the plain and the audited model took.

    Single-row scenarios alternate between the two models every ``CHUNK``
    operations (switching which goes first), so a slow spell of the machine
    (autovacuum, a checkpoint, another process) hits both alike. The audited
    model runs inside an audit context, entered anew for each chunk, which
    charges it one extra context write and clear per chunk.
    """

    def __init__(self, target: BenchTarget, user: Any) -> None:
        self.target = target
        self.user = user

    def _audited(self, action: Callable[[], Any]) -> float:
        with audit_context("benchmark", performed_by=self.user):
            return timed(action)

    def _interleaved(self, plain: Callable[[range], Any], audited: Callable[[range], Any]) -> tuple[float, float]:
        plain_total = audited_total = 0.0
        for number, start in enumerate(range(0, SINGLE, CHUNK)):
            chunk = range(start, min(start + CHUNK, SINGLE))
            for side in ("plain", "audited") if number % 2 == 0 else ("audited", "plain"):
                if side == "plain":
                    plain_total += timed(lambda: plain(chunk))  # noqa: B023  # called at once, in this iteration
                else:
                    audited_total += self._audited(lambda: audited(chunk))  # noqa: B023  # likewise
        return plain_total, audited_total

    def create(self) -> tuple[float, float]:
        def make(model: type[BenchPlain | BenchAudited]) -> Callable[[range], Any]:
            return lambda chunk: [model.objects.create(**values(i, self.target)) for i in chunk]

        return self._interleaved(make(BenchPlain), make(BenchAudited))

    def save(self) -> tuple[float, float]:
        def make(model: type[BenchPlain | BenchAudited]) -> Callable[[range], Any]:
            objects = list(model.objects.order_by("pk")[:SINGLE])

            def run(chunk: range) -> None:
                for i in chunk:
                    objects[i].quantity += 1
                    objects[i].note = "changed"
                    objects[i].save()

            return run

        return self._interleaved(make(BenchPlain), make(BenchAudited))

    def delete(self) -> tuple[float, float]:
        def make(model: type[BenchPlain | BenchAudited]) -> Callable[[range], Any]:
            objects = list(model.objects.order_by("pk")[:SINGLE])
            return lambda chunk: [objects[i].delete() for i in chunk]

        return self._interleaved(make(BenchPlain), make(BenchAudited))

    def bulk_create(self) -> tuple[float, float]:
        plain_rows = [BenchPlain(**values(i, self.target)) for i in range(BULK)]
        audited_rows = [BenchAudited(**values(i, self.target)) for i in range(BULK)]
        plain = timed(lambda: BenchPlain.objects.bulk_create(plain_rows))
        return plain, self._audited(lambda: BenchAudited.objects.bulk_create(audited_rows))

    def update(self) -> tuple[float, float]:
        plain = timed(lambda: BenchPlain.objects.update(quantity=F("quantity") + 1, note="bulk"))
        return plain, self._audited(lambda: BenchAudited.objects.update(quantity=F("quantity") + 1, note="bulk"))


def reset() -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            f'TRUNCATE "{BenchPlain._meta.db_table}", "{BenchAudited._meta.db_table}", "{AuditLogEntry._meta.db_table}"'
        )


def run_write_benchmarks(rounds: int, user: Any) -> dict[str, tuple[float, float]]:
    scenarios = Scenarios(BenchTarget.objects.create(name="target"), user)
    names = ["create", "save", "delete", "bulk_create", "update"]
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in names}
    for round_number in range(rounds):
        reset()
        for name in names:
            times[name].append(getattr(scenarios, name)())
        print(f"  round {round_number + 1}/{rounds} done", file=sys.stderr)
    return {
        name: (statistics.median(plain for plain, _ in pairs), statistics.median(audited for _, audited in pairs))
        for name, pairs in times.items()
    }


def run_fetch_benchmark(rounds: int, user: Any) -> tuple[float, float]:
    """50 newest entries of one object among 100,000, against a plain 50-row fetch."""
    reset()
    target = BenchTarget.objects.create(name="fetch")
    with audit_context("benchmark", performed_by=user):
        BenchAudited.objects.bulk_create([BenchAudited(**values(i, target)) for i in range(BULK)])
        while AuditLogEntry.objects.count() < LOG_SIZE:
            BenchAudited.objects.update(quantity=F("quantity") + 1)
        obj = BenchAudited.objects.order_by("id").first()
        assert obj is not None
        for _ in range(200):
            BenchAudited.objects.filter(pk=obj.pk).update(quantity=F("quantity") + 1)
    other = BenchTarget.objects.create(name="other")
    BenchPlain.objects.bulk_create([BenchPlain(**values(i, other)) for i in range(LOG_SIZE)])
    BenchPlain.objects.bulk_create([BenchPlain(**values(i, target)) for i in range(200)])
    with connection.cursor() as cursor:
        cursor.execute(f'ANALYZE "{AuditLogEntry._meta.db_table}"')
        cursor.execute(f'ANALYZE "{BenchPlain._meta.db_table}"')

    def audited() -> None:
        entries = list(obj.audit_logs.all()[:50])
        assert len(entries) == 50

    def plain() -> None:
        # The plain counterpart: the 50 newest rows matching an indexed filter.
        rows = list(BenchPlain.objects.filter(target=target).order_by("-id")[:50])
        assert len(rows) == 50

    plain_times, audited_times = [], []
    for _ in range(rounds):
        plain_times.append(timed(lambda: [plain() for _ in range(200)]))
        audited_times.append(timed(lambda: [audited() for _ in range(200)]))
    return statistics.median(plain_times), statistics.median(audited_times)


def count_statements(user: Any) -> dict[str, dict[str, int]]:
    """Statements per request with and without the middleware, for two CONN_MAX_AGE values.

    Requests go through Django's WSGI handler, which (unlike the test client)
    closes connections after each request when CONN_MAX_AGE is 0.
    """
    client = Client()
    client.force_login(user)
    cookie = f"sessionid={client.cookies['sessionid'].value}"
    results: dict[str, dict[str, int]] = {}
    settings_dict = connections["default"].settings_dict
    for max_age in (0, 600):
        settings_dict["CONN_MAX_AGE"] = max_age
        for path, method in (("/read/", "GET"), ("/create/", "POST")):
            counts = {}
            for label, change in (
                ("without", modify_settings(MIDDLEWARE={"remove": "audit_log.middleware.RequestContextMiddleware"})),
                ("with", modify_settings()),
            ):
                with change:
                    handler = WSGIHandler()
                    wsgi_request(handler, path, cookie, method)  # warm up: session, content types
                    with CaptureQueriesContext(connections["default"]) as queries:
                        status, _ = wsgi_request(handler, path, cookie, method)
                    assert status.startswith("200"), status
                    counts[label] = len(queries)
            results[f"{method} {path} CONN_MAX_AGE={max_age}"] = counts
    settings_dict["CONN_MAX_AGE"] = 0
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds per scenario (default 7)")
    args = parser.parse_args()
    if args.rounds < 5:
        parser.error("use at least 5 rounds")
    old = setup_databases(verbosity=0, interactive=False, aliases={"default"})
    try:
        user = UserFactory(username="benchmark")
        with connection.cursor() as cursor:
            cursor.execute("SELECT version()")
            print(f"# {cursor.fetchone()[0]}")
        driver = connection.Database.__name__
        version = getattr(connection.Database, "__version__", "?").split()[0]
        print(
            f"# Django {django.get_version()}, Python {sys.version.split()[0]}, {driver} {version}, "
            f"{args.rounds} rounds, medians\n"
        )
        writes = run_write_benchmarks(args.rounds, user)
        fetch = run_fetch_benchmark(args.rounds, user)
        targets = {"create": 1.20, "save": 1.20, "delete": 1.20, "bulk_create": 1.30, "update": 3.0}
        labels = {
            "create": f"create() x {SINGLE:,} in autocommit",
            "save": f"save() x {SINGLE:,}, 2 fields changed",
            "delete": f"delete() x {SINGLE:,}",
            "bulk_create": f"bulk_create {BULK:,} rows",
            "update": f"QuerySet.update() {BULK:,} rows, 2 of 8 columns",
        }
        print(f"| {'scenario':<46} | {'plain':>9} | {'audited':>9} | {'ratio':>6} | {'target':>7} |")
        print(f"|{'-' * 48}|{'-' * 11}|{'-' * 11}|{'-' * 8}|{'-' * 9}|")
        for name, (plain, audited) in writes.items():
            ratio = audited / plain
            print(
                f"| {labels[name]:<46} | {plain * 1000:>7.1f}ms | {audited * 1000:>7.1f}ms | {ratio:>5.2f}x | "
                f"<={targets[name]:.2f}x |"
            )
        plain, audited = fetch
        print(
            f"| {'50 newest entries of 1 object among 100,000 *':<46} | {plain * 5:>7.2f}ms | {audited * 5:>7.2f}ms | "
            f"{audited / plain:>5.2f}x | <={1.5:.2f}x |"
        )
        print(
            "\n* `list(obj.audit_logs.all()[:50])` against the 50 newest of 100,200 plain rows matching an "
            "indexed foreign key; times per fetch (200 fetches a round)\n"
        )
        print("| statements per request                     | without middleware | with middleware |")
        print("|--------------------------------------------|-------------------:|----------------:|")
        for label, counts in count_statements(user).items():
            print(f"| {label:<42} | {counts['without']:>18} | {counts['with']:>15} |")
    finally:
        teardown_databases(old, verbosity=0)


if __name__ == "__main__":
    main()
