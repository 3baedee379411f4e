"""Benchmark what auditing costs: a plain model against the same model audited, in one run.

Run ``python -m tests.benchmarks`` (``--rounds N``, default 7, at least 5;
``--user session`` to send the requests logged in; ``--smoke`` for a quick
correctness run with tiny sizes and one round). It uses ``DATABASE_URL`` when
set, else an embedded PostgreSQL, and a throwaway database of its own
(``test_<NAME>_benchmark``, so a test run on the same server is left alone).
Both models have the same eight columns (char, text, int, decimal, bool,
datetime, foreign key, nullable char); ``BenchAudited`` has the triggers.

Table 1, what a user pays: one HTTP request per write. Each ``create()``,
``save()`` (read the row, change two fields) and ``delete()`` (read the row,
delete it) is its own POST, served by Django's ``WSGIHandler``; the timing
covers the handler call, iterating the body and ``response.close()``, which
fires ``request_finished`` (and so closes the connection when
``CONN_MAX_AGE = 0``). ``BenchPlain`` is served by a handler without
``RequestContextMiddleware``, ``BenchAudited`` by one with it; the middleware
is otherwise that of ``tests/settings.py``. Both ``CONN_MAX_AGE = 0`` (a new
connection per request, connecting included in the time) and ``None`` (one
persistent connection) are run, and the run checks that each request of the
first opens exactly one connection and the second none. Requests are anonymous
(no session cookie: a plain ``create()`` request sends exactly one statement)
unless ``--user session``. Statements per request are counted on one extra
request each, outside the timed loop, as Django's ``execute()`` calls (one
round trip each with client-side binding), with a read-only GET for comparison.

Table 2, amortised: the ORM called directly inside ``audit_context``, one
context per 200 single-row writes, and ``bulk_create`` of 10,000 rows and a
``QuerySet.update()`` of 10,000 rows (2 of 8 columns) inside one context each.
The audited time is the whole ``with`` block: entering, the writes, leaving.
Then the fetch of the 50 newest log entries of one object among 100,000
against a plain 50-row fetch, with the number of queries it takes (with a
cold content-type cache, as in a fresh process, and warm).

Within a round plain and audited alternate (every 100 requests or 200 writes,
switching which goes first); the tables report the medians over rounds and
their ratio, audited / plain. Single-row scenarios run before the
10,000-row ones in the same database session, so a plan cached for one row
(see ``audit_log.sql.FUNCTION_SETTINGS``) would show up as a slow bulk scenario.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

import django

django.setup()

from django.conf import settings  # noqa: E402
from django.contrib.contenttypes.models import ContentType  # noqa: E402
from django.core.handlers.wsgi import WSGIHandler  # noqa: E402
from django.db import connection, connections  # noqa: E402
from django.db.backends.signals import connection_created  # noqa: E402
from django.db.models import F, Max  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext, modify_settings, setup_databases, teardown_databases  # noqa: E402

from audit_log.context import audit_context  # noqa: E402
from tests.factories import UserFactory  # noqa: E402
from tests.testapp.models import AuditLogEntry, BenchAudited, BenchPlain, BenchTarget  # noqa: E402
from tests.wsgi import wsgi_environ  # noqa: E402

MIDDLEWARE = "audit_log.middleware.RequestContextMiddleware"
MODES = (0, None)  # CONN_MAX_AGE: a connection per request, then one persistent connection
MODELS = {"plain": BenchPlain, "audited": BenchAudited}
WRITES = ("create", "save", "delete")
NOW = datetime(2026, 1, 1, tzinfo=UTC)
TARGETS = {"request": 1.15, "bulk_create": 1.10, "update": 2.2, "fetch": 1.5}


@dataclass(frozen=True)
class Sizes:
    """How much each scenario does per round."""

    requests: int  # requests per side, per write scenario and CONN_MAX_AGE mode
    chunk: int  # plain and audited alternate every `chunk` requests
    single: int  # amortised single-row writes per side
    per_context: int  # amortised writes per audit context
    bulk: int  # rows of bulk_create and update()
    log_size: int  # log entries among which the fetched object's are
    history: int  # log entries of the fetched object
    fetches: int  # fetches per side and round


FULL = Sizes(
    requests=600, chunk=100, single=2_000, per_context=200, bulk=10_000, log_size=100_000, history=200, fetches=200
)
SMOKE = Sizes(requests=20, chunk=10, single=40, per_context=20, bulk=200, log_size=2_000, history=60, fetches=5)


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


def alternate(number: int) -> tuple[str, str]:
    """Return the order of the two sides for chunk ``number``: plain first, then audited first."""
    return ("plain", "audited") if number % 2 == 0 else ("audited", "plain")


# --- table 1: one HTTP request per write -------------------------------------------------


class Site:
    """The two WSGI handlers, the requests' cookie, and a count of the connections opened.

    A ``WSGIHandler`` builds its middleware chain when constructed, so each is
    built once: the plain one while the middleware is removed from the settings.
    """

    def __init__(self, cookie: str, target: BenchTarget) -> None:
        assert MIDDLEWARE in settings.MIDDLEWARE
        with modify_settings(MIDDLEWARE={"remove": MIDDLEWARE}):
            plain = WSGIHandler()
        self.handlers = {"plain": plain, "audited": WSGIHandler()}
        self.cookie = cookie
        self.body = f"target={target.pk}".encode()
        self.opened = 0
        connection_created.connect(self._opened, weak=False)

    def _opened(self, **kwargs: Any) -> None:
        self.opened += 1

    def environ(self, path: str, method: str = "POST") -> dict[str, Any]:
        """Return a WSGI environ for one request, as a server would pass it."""
        body = self.body if path.endswith("/create/") else b""
        return wsgi_environ(path, method, self.cookie, body)

    def serve(self, kind: str, environs: list[dict[str, Any]], max_age: int | None) -> float:
        """Serve ``environs`` one after the other and return the seconds they took, all included."""
        handler = self.handlers[kind]
        statuses: list[str] = []

        def start_response(status: str, headers: Any) -> None:
            statuses.append(status)

        opened = self.opened
        start = time.perf_counter()
        for environ in environs:
            response = handler(environ, start_response)
            for _ in response:
                pass
            response.close()  # as WSGI servers do: fires request_finished, which closes old connections
        elapsed = time.perf_counter() - start
        failed = [status for status in statuses if not status.startswith("200")]
        assert not failed, f"{kind} requests failed: {failed[:3]}"
        assert len(statuses) == len(environs), f"{len(environs) - len(statuses)} {kind} responses never started"
        expected = len(environs) if max_age == 0 else 0
        assert self.opened - opened == expected, (
            f"CONN_MAX_AGE={max_age}: {self.opened - opened} connections opened for {len(environs)} requests, "
            f"expected {expected}"
        )
        return elapsed

    def count(self, kind: str, path: str, method: str = "POST") -> int:
        """Serve one request and return how many statements it sent."""
        with CaptureQueriesContext(connections["default"]) as queries:
            response = self.handlers[kind](self.environ(path, method), lambda status, headers: None)
            assert response.status_code == 200, response.status_code
            for _ in response:
                pass
            response.close()
        return len(queries)


def use_max_age(max_age: int | None) -> None:
    """Switch CONN_MAX_AGE; the next connection is opened (now, if persistent) under the new value."""
    connections["default"].settings_dict["CONN_MAX_AGE"] = max_age
    connection.close()  # a connection keeps the close_at computed when it was opened
    if max_age is None:
        connection.ensure_connection()


def new_rows(kind: str, after: int) -> list[int]:
    return list(MODELS[kind].objects.filter(pk__gt=after).order_by("pk").values_list("pk", flat=True))


def last_pk(kind: str) -> int:
    return MODELS[kind].objects.aggregate(last=Max("pk"))["last"] or 0


def serve_alternating(
    site: Site, paths: dict[str, list[str]], requests: int, chunk: int, max_age: int | None
) -> tuple[float, float]:
    """Serve each side's ``paths`` as requests, the sides alternating every ``chunk``; return (plain, audited)
    seconds per request."""
    total = {"plain": 0.0, "audited": 0.0}
    for number, start in enumerate(range(0, requests, chunk)):
        for kind in alternate(number):
            environs = [site.environ(path) for path in paths[kind][start : start + chunk]]
            total[kind] += site.serve(kind, environs, max_age)
    return total["plain"] / requests, total["audited"] / requests


def request_round(site: Site, max_age: int | None, requests: int, chunk: int) -> dict[str, tuple[float, float]]:
    """Run the three write scenarios as requests, alternating the sides every ``chunk`` requests."""
    use_max_age(max_age)
    entries = AuditLogEntry.objects.filter(context_type="http-request").count()
    before = {kind: last_pk(kind) for kind in MODELS}
    times: dict[str, tuple[float, float]] = {}
    for scenario in WRITES:
        if scenario == "create":
            paths = {kind: [f"/bench/{kind}/create/"] * requests for kind in MODELS}
        else:
            paths = {
                kind: [f"/bench/{kind}/{pk}/{scenario}/" for pk in new_rows(kind, before[kind])] for kind in MODELS
            }
            assert all(len(kind_paths) == requests for kind_paths in paths.values())
        times[scenario] = serve_alternating(site, paths, requests, chunk, max_age)
    # Every audited request logged its write under the request's context; the plain ones logged nothing.
    logged = AuditLogEntry.objects.filter(context_type="http-request").count() - entries
    assert logged == len(WRITES) * requests, f"{logged} entries logged by {len(WRITES) * requests} audited writes"
    assert not any(new_rows(kind, before[kind]) for kind in MODELS), "rows left over after the delete requests"
    return times


def count_statements(site: Site, max_age: int | None) -> dict[str, tuple[int, int]]:
    """Statements of one request of each scenario, without and with the middleware."""
    use_max_age(max_age)
    counts: dict[str, dict[str, int]] = {name: {} for name in (*WRITES, "read")}
    for kind in MODELS:
        before = last_pk(kind)
        counts["create"][kind] = site.count(kind, f"/bench/{kind}/create/")
        (pk,) = new_rows(kind, before)
        counts["read"][kind] = site.count(kind, f"/bench/{kind}/{pk}/", "GET")
        counts["save"][kind] = site.count(kind, f"/bench/{kind}/{pk}/save/")
        counts["delete"][kind] = site.count(kind, f"/bench/{kind}/{pk}/delete/")
    return {name: (by_kind["plain"], by_kind["audited"]) for name, by_kind in counts.items()}


# --- table 2: inside audit_context, amortised ----------------------------------------------


class Scenarios:
    """The amortised scenarios. Each returns the seconds the plain and the audited model took.

    Single-row scenarios alternate between the two models every
    ``per_context`` writes (switching which goes first), so a slow spell of the
    machine hits both alike. Each audited chunk is one ``audit_context`` block,
    timed whole: entering it, writing its context row, the writes, and leaving
    it (clearing the row).
    """

    def __init__(self, target: BenchTarget, user: Any, sizes: Sizes) -> None:
        self.target = target
        self.user = user
        self.sizes = sizes

    def _audited(self, action: Callable[[], Any]) -> float:
        start = time.perf_counter()
        with audit_context("benchmark", performed_by=self.user):
            action()
        return time.perf_counter() - start

    def _interleaved(self, plain: Callable[[range], Any], audited: Callable[[range], Any]) -> tuple[float, float]:
        plain_total = audited_total = 0.0
        single, chunk_size = self.sizes.single, self.sizes.per_context
        for number, start in enumerate(range(0, single, chunk_size)):
            chunk = range(start, min(start + chunk_size, single))
            for side in alternate(number):
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
            objects = list(model.objects.order_by("pk")[: self.sizes.single])

            def run(chunk: range) -> None:
                for i in chunk:
                    objects[i].quantity += 1
                    objects[i].note = "changed"
                    objects[i].save()

            return run

        return self._interleaved(make(BenchPlain), make(BenchAudited))

    def delete(self) -> tuple[float, float]:
        def make(model: type[BenchPlain | BenchAudited]) -> Callable[[range], Any]:
            objects = list(model.objects.order_by("pk")[: self.sizes.single])
            return lambda chunk: [objects[i].delete() for i in chunk]

        return self._interleaved(make(BenchPlain), make(BenchAudited))

    def bulk_create(self) -> tuple[float, float]:
        plain_rows = [BenchPlain(**values(i, self.target)) for i in range(self.sizes.bulk)]
        audited_rows = [BenchAudited(**values(i, self.target)) for i in range(self.sizes.bulk)]
        plain = timed(lambda: BenchPlain.objects.bulk_create(plain_rows))
        return plain, self._audited(lambda: BenchAudited.objects.bulk_create(audited_rows))

    def update(self) -> tuple[float, float]:
        plain = timed(lambda: BenchPlain.objects.update(quantity=F("quantity") + 1, note="bulk"))
        return plain, self._audited(lambda: BenchAudited.objects.update(quantity=F("quantity") + 1, note="bulk"))


def reset() -> None:
    tables = (BenchPlain, BenchAudited, AuditLogEntry)
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE " + ", ".join(connection.ops.quote_name(m._meta.db_table) for m in tables))


def run_rounds(rounds: int, site: Site, scenarios: Scenarios) -> dict[str, tuple[float, float]]:
    """Run every write scenario once per round; return the medians of (plain, audited) seconds."""
    sizes = scenarios.sizes
    for max_age in MODES:  # warm up: imports, URL resolver, content types, the first connection
        request_round(site, max_age, min(sizes.chunk, sizes.requests), sizes.chunk)
    names = [f"{scenario} {max_age}" for max_age in MODES for scenario in WRITES]
    names += ["create", "save", "delete", "bulk_create", "update"]
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in names}
    for round_number in range(rounds):
        reset()
        for max_age in MODES:
            for scenario, pair in request_round(site, max_age, sizes.requests, sizes.chunk).items():
                times[f"{scenario} {max_age}"].append(pair)
        use_max_age(0)
        for name in ("create", "save", "delete", "bulk_create", "update"):
            times[name].append(getattr(scenarios, name)())
        print(f"  round {round_number + 1}/{rounds} done", file=sys.stderr)
    return {
        name: (statistics.median(p for p, _ in pairs), statistics.median(a for _, a in pairs))
        for name, pairs in times.items()
    }


def run_fetch_benchmark(rounds: int, user: Any, sizes: Sizes) -> tuple[float, float, int, int]:
    """Time the 50 newest entries of one object against a plain 50-row fetch, and count its queries.

    Returns:
        Seconds per plain fetch, per audited fetch, and the queries of the
        audited fetch with a cold and with a warm content-type cache.
    """
    reset()
    target = BenchTarget.objects.create(name="fetch")
    with audit_context("benchmark", performed_by=user):
        BenchAudited.objects.bulk_create([BenchAudited(**values(i, target)) for i in range(sizes.bulk)])
        while AuditLogEntry.objects.count() < sizes.log_size:
            BenchAudited.objects.update(quantity=F("quantity") + 1)
        obj = BenchAudited.objects.order_by("id").first()
        assert obj is not None
        for _ in range(sizes.history):
            BenchAudited.objects.filter(pk=obj.pk).update(quantity=F("quantity") + 1)
    other = BenchTarget.objects.create(name="other")
    BenchPlain.objects.bulk_create([BenchPlain(**values(i, other)) for i in range(sizes.log_size)])
    BenchPlain.objects.bulk_create([BenchPlain(**values(i, target)) for i in range(sizes.history)])
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {connection.ops.quote_name(AuditLogEntry._meta.db_table)}")
        cursor.execute(f"ANALYZE {connection.ops.quote_name(BenchPlain._meta.db_table)}")

    def audited() -> None:
        entries = list(obj.audit_logs.all()[:50])
        assert len(entries) == 50

    def plain() -> None:
        # The plain counterpart: the 50 newest rows matching an indexed filter.
        rows = list(BenchPlain.objects.filter(target=target).order_by("-id")[:50])
        assert len(rows) == 50

    ContentType.objects.clear_cache()  # as in a fresh process
    with CaptureQueriesContext(connection) as cold:
        audited()
    with CaptureQueriesContext(connection) as warm:
        audited()
    plain_times, audited_times = [], []
    for _ in range(rounds):
        plain_times.append(timed(lambda: [plain() for _ in range(sizes.fetches)]))
        audited_times.append(timed(lambda: [audited() for _ in range(sizes.fetches)]))
    per_fetch = sizes.fetches
    return (
        statistics.median(plain_times) / per_fetch,
        statistics.median(audited_times) / per_fetch,
        len(cold),
        len(warm),
    )


# --- output ---------------------------------------------------------------------------------


def print_table(title: str, header: list[str], rows: list[list[Any]]) -> None:
    """Print a Markdown table: the first column left-aligned, the others right-aligned."""
    cells = [header, *([str(cell) for cell in row] for row in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]

    def line(row: list[str]) -> str:
        aligned = (c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))
        return "| " + " | ".join(aligned) + " |"

    rule = "|" + "|".join("-" * (w + 2) if i == 0 else "-" * (w + 1) + ":" for i, w in enumerate(widths)) + "|"
    print(f"\n{title}\n", line(cells[0]), rule, *map(line, cells[1:]), sep="\n")


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.3f} ms"


def compared(plain: float, audited: float, target: float | None) -> list[str]:
    """Return the cells: plain time, audited time, their ratio and its target."""
    return [ms(plain), ms(audited), f"{audited / plain:.2f}x", f"<= {target:.2f}x" if target else "-"]


def report(
    sizes: Sizes,
    logged_in: bool,
    times: dict[str, tuple[float, float]],
    counts: dict[int | None, dict[str, tuple[int, int]]],
    fetch: tuple[float, float, int, int],
) -> None:
    """Print the tables."""
    labels = {"create": "create()", "save": "save(), 2 fields changed", "delete": "delete()", "read": "GET, only reads"}
    rows = []
    for max_age in MODES:
        for scenario in (*WRITES, "read"):
            plain, audited = counts[max_age][scenario]
            timing = ["-"] * 4 if scenario == "read" else compared(*times[f"{scenario} {max_age}"], TARGETS["request"])
            rows.append([labels[scenario], max_age, *timing, plain, audited, f"{audited - plain:+d}", 0])
    print_table(
        f"## One HTTP request per write, {'logged in (session cookie)' if logged_in else 'anonymous'}: median time "
        f"per request, {sizes.requests:,} requests per side and scenario a round",
        ["request", "CONN_MAX_AGE", "plain", "audited", "ratio", "target", "stmts plain", "audited", "extra", "target"],
        rows,
    )
    print(
        "\nsave() and delete() requests read the row first. Statements: execute() calls of one extra request.\n"
        "Connections checked: one opened per request with CONN_MAX_AGE=0, none during the timed requests with None."
    )
    amortised = {
        "create": f"create() x {sizes.single:,}",
        "save": f"save() x {sizes.single:,}, 2 fields changed",
        "delete": f"delete() x {sizes.single:,}",
        "bulk_create": f"bulk_create {sizes.bulk:,} rows",
        "update": f"QuerySet.update() {sizes.bulk:,} rows, 2 of 8 columns",
    }
    print_table(
        f"## Inside audit_context, amortised: one context per {sizes.per_context} single-row writes, one per bulk "
        "scenario; the whole with block timed (entering and leaving too); median time per round",
        ["scenario", "plain", "audited", "ratio", "target"],
        [[label, *compared(*times[name], TARGETS.get(name))] for name, label in amortised.items()],
    )
    fetch_plain, fetch_audited, cold, warm = fetch
    row = [
        f"50 newest entries of 1 object among {sizes.log_size:,}",
        *compared(fetch_plain, fetch_audited, TARGETS["fetch"]),
    ]
    print_table(
        "## Reading the log: median time per fetch",
        ["fetch", "plain", "audited", "ratio", "target", "queries cold / warm", "target"],
        [[*row, f"{cold} / {warm}", 1]],
    )
    print(
        f"\n`list(obj.audit_logs.all()[:50])` against the 50 newest of {sizes.log_size + sizes.history:,} plain rows "
        f"matching an indexed foreign key, {sizes.fetches} fetches a round; queries counted once with "
        "ContentType.objects.clear_cache() first (cold, as in a fresh process) and once after (warm)."
    )


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and print its tables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 7; at least 5 unless --smoke)")
    parser.add_argument("--user", choices=["anonymous", "session"], default="anonymous", help="who sends the requests")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes and one round: a correctness run")
    args = parser.parse_args(argv)
    rounds = args.rounds or (1 if args.smoke else 7)
    if rounds < 1 or (rounds < 5 and not args.smoke):
        parser.error("use at least 5 rounds (or --smoke for a correctness run)")
    sizes = SMOKE if args.smoke else FULL
    default = connections["default"].settings_dict
    # A database of its own: a test run against the same server uses test_<NAME>.
    default["TEST"]["NAME"] = f"test_{default['NAME']}_benchmark" + ("_smoke" if args.smoke else "")
    old = setup_databases(verbosity=0, interactive=False, aliases={"default"})
    try:
        user = UserFactory(username="benchmark")
        cookie = ""
        if args.user == "session":
            client = Client()
            client.force_login(user)
            cookie = f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"
        with connection.cursor() as cursor:
            cursor.execute("SELECT version()")
            print(f"# {cursor.fetchone()[0]}")
        driver = connection.Database.__name__
        version = getattr(connection.Database, "__version__", "?").split()[0]
        binding = "server-side" if default.get("OPTIONS", {}).get("server_side_binding") else "client-side"
        print(
            f"# Django {django.get_version()}, Python {sys.version.split()[0]}, {driver} {version} ({binding} binding)"
        )
        print(
            f"# {rounds} rounds{' (smoke)' if args.smoke else ''}, medians; CONN_MAX_AGE "
            + " and ".join(str(mode) for mode in MODES)
            + f"; requests {'with a session cookie' if cookie else 'anonymous'}",
            flush=True,
        )
        target = BenchTarget.objects.create(name="target")
        site = Site(cookie, target)
        times = run_rounds(rounds, site, Scenarios(target, user, sizes))
        counts = {max_age: count_statements(site, max_age) for max_age in MODES}
        fetch = run_fetch_benchmark(rounds, user, sizes)
    finally:
        connections["default"].settings_dict["CONN_MAX_AGE"] = 0
        connection.close()
        teardown_databases(old, verbosity=0)

    report(sizes, bool(cookie), times, counts, fetch)


if __name__ == "__main__":
    main()
