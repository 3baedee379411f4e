"""Time the admin pages on a large log: ``python -m tests.admin.benchmark [--rows N] [--hot N]``.

Fills a throwaway test database's log with ``--rows`` entries (default
1,000,000) of which ``--hot`` (default 10,000) belong to one invoice, runs
VACUUM ANALYZE, then requests each page ``--rounds`` times as a superuser and as
a staff user who may view the log and every model but ``Customer`` (whose
entries, 2% of the log, are hidden from them), and prints the median times and
the numbers of queries. It also times what Django's defaults would run instead
(a full ``COUNT(*)``, the date hierarchy's aggregates), for comparison. Uses
``DATABASE_URL`` when set.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

import django

django.setup()

from django.contrib.auth.models import Permission  # noqa: E402
from django.contrib.contenttypes.models import ContentType  # noqa: E402
from django.db import connection  # noqa: E402
from django.db.models import Max, Min  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext, setup_databases, teardown_databases  # noqa: E402

from audit_log.context import audit_context  # noqa: E402
from tests.factories import UserFactory  # noqa: E402
from tests.testapp.models import AuditLogEntry, Customer, Invoice  # noqa: E402

INVOICES = 1_000


def fill(rows: int, hot: int) -> tuple[Invoice, int]:
    """Create invoices and users, then ``rows`` synthetic entries; return the hot invoice and a middle entry id."""
    users = [UserFactory(username=f"user{i}") for i in range(10)]
    with audit_context("setup", performed_by=users[0]):
        customer = Customer.objects.create(name="Big customer")
        Invoice.objects.bulk_create(Invoice(number=f"B-{i}", customer=customer) for i in range(INVOICES))
    hot_invoice = Invoice.objects.order_by("pk").first()
    assert hot_invoice is not None
    invoice_ct = ContentType.objects.get_for_model(Invoice)
    customer_ct = ContentType.objects.get_for_model(Customer)
    every = max(1, rows // hot)
    table = connection.ops.quote_name(AuditLogEntry._meta.db_table)
    with connection.cursor() as cursor:
        # Entry n: every `every`-th one is the hot invoice's, a few are customers', the rest spread over
        # the other invoices; time grows with n over about two years, three entries per transaction,
        # ten per request.
        cursor.execute(
            f"""
            INSERT INTO {table} (content_type_id, object_id, table_name, action, at, changes, transaction_id,
                                 context_id, context_type, context, performed_by_id, performed_by_label, tenant)
            SELECT CASE WHEN n %% 50 = 1 THEN %(customer_ct)s ELSE %(invoice_ct)s END,
                   CASE WHEN n %% %(every)s = 0 THEN %(hot)s::text
                        WHEN n %% 50 = 1 THEN %(customer)s::text
                        ELSE (%(hot)s + 1 + n %% (%(invoices)s - 1))::text END,
                   CASE WHEN n %% 50 = 1 THEN 'testapp_customer' ELSE 'testapp_invoice' END,
                   'UPDATE',
                   now() - interval '730 days' + n * (interval '730 days' / %(rows)s),
                   CASE WHEN n %% 3 = 0 THEN jsonb_build_object('status', jsonb_build_array('draft', 'sent'))
                        WHEN n %% 3 = 1 THEN jsonb_build_object('amount', jsonb_build_array(n, n + 1))
                        ELSE jsonb_build_object('notes', jsonb_build_array('old text ' || n, 'new text ' || n),
                                                'customer_id', jsonb_build_array(NULL, %(customer)s)) END,
                   1000000 + n / 3,
                   lpad(to_hex(n / 10), 32, '0')::uuid,  -- time-ordered, like the core's uuid7()
                   'http-request',
                   jsonb_build_object('method', 'POST', 'path', '/admin/testapp/invoice/' || (n %% 1000) || '/change/',
                                      'query_params', '{{}}'::jsonb, 'remote_addr', '127.0.0.1'),
                   %(first_user)s + n %% 10,
                   'user' || (n %% 10),
                   ''
            FROM generate_series(1, %(rows)s) AS n
            """,
            {
                "rows": rows,
                "every": every,
                "hot": hot_invoice.pk,
                "customer": customer.pk,
                "invoices": INVOICES,
                "invoice_ct": invoice_ct.pk,
                "customer_ct": customer_ct.pk,
                "first_user": users[0].pk,
            },
        )
    connection.set_autocommit(True)
    with connection.cursor() as cursor:
        cursor.execute(f"VACUUM ANALYZE {table}")
    middle = AuditLogEntry.objects.filter(content_type=invoice_ct, object_id=str(hot_invoice.pk)).order_by("id")
    middle_id = middle.values_list("id", flat=True)[hot // 2]
    return hot_invoice, middle_id


def staff_client() -> Client:
    """Log in a staff user who may view the log and every model but ``Customer``."""
    staff = UserFactory(username="bench-staff", is_staff=True)
    hidden = ContentType.objects.get_for_model(Customer)
    staff.user_permissions.set(Permission.objects.filter(codename__startswith="view_").exclude(content_type=hidden))
    client = Client()
    client.force_login(staff)
    return client


def measure(action: Callable[[], Any], rounds: int) -> tuple[float, int]:
    """Return the median seconds of ``action`` and the queries its last run made."""
    times = []
    queries = 0
    for _ in range(rounds):
        with CaptureQueriesContext(connection) as captured:
            start = time.perf_counter()
            action()
            times.append(time.perf_counter() - start)
        queries = len(captured.captured_queries)
    return statistics.median(times), queries


def search_pages(log: str, hot: Invoice) -> dict[str, str]:
    """Return the searches to time: one word, an object id, and many words that each read the whole log.

    A search ANDs its words, and PostgreSQL stops at the first word a row does
    not match: words every entry matches, then one that matches none, make it
    test every word against every row (the worst case).
    """
    every, none = "invoice", "no-such-word"  # every entry's context has "/admin/testapp/invoice/"

    def url(words: list[str], **params: str) -> str:
        return f"{log}?{urlencode({'q': ' '.join(words), **params})}"

    day = {"at_after": "2025-06-01T00:00", "at_before": "2025-06-02T00:00"}
    month = {"at__year": "2025", "at__month": "6"}
    return {
        "search, 1 word (a path)": url(["/admin/testapp/invoice/7/change/"]),
        "search, an object id": url([str(hot.pk)]),
        "search, 5 words": url([every] * 4 + [none]),
        "search, 200 words": url([every] * 199 + [none]),
        "search, 1 word, one day": url(["/admin/testapp/invoice/7/change/"], **day),
        "search, 5 words, one day": url([every] * 4 + [none], **day),
        "search, 5 words, one month": url([every] * 4 + [none], **month),
    }


def time_searches(client: Client, log: str, hot: Invoice, rounds: int) -> None:
    """Time each search of :func:`search_pages` (median of ``rounds``) and say what the page answered."""
    notes = {
        b"Not searched": "refused: narrow the list first",
        b"Only the first": "first words only",
        b"took longer than": "stopped by the statement timeout",
    }
    print(f"\n{'search (median)':<34} {'ms':>10} {'queries':>8}  page says")
    for name, url in search_pages(log, hot).items():
        responses: list[Any] = []
        seconds, queries = measure(lambda url=url, responses=responses: responses.append(client.get(url)), rounds)
        assert responses[-1].status_code == 200, url
        said = ", ".join(note for marker, note in notes.items() if marker in responses[-1].content) or "results"
        print(f"{name:<34} {seconds * 1000:>10.1f} {queries:>8}  {said}")


#: What ``audit_log_admin.limits`` sends in front of a log query (the statement timeout).
TIMEOUT_PREFIX = re.compile(r"^(SAVEPOINT \w+; )?SET LOCAL statement_timeout = \d+; ")


def explain_slow(client: Client, url: str, threshold_ms: float = 20) -> None:
    """Print EXPLAIN ANALYZE of the log queries a page runs that take longer than ``threshold_ms``."""
    with CaptureQueriesContext(connection) as captured:
        client.get(url)
    table = AuditLogEntry._meta.db_table
    for query in captured.captured_queries:
        if float(query["time"]) * 1000 < threshold_ms or table not in query["sql"]:
            continue
        with connection.cursor() as cursor:
            cursor.execute("EXPLAIN (ANALYZE, COSTS OFF) " + TIMEOUT_PREFIX.sub("", query["sql"]))
            plan = "\n".join(f"      {line}" for (line,) in cursor.fetchall())
        print(f"    {float(query['time']) * 1000:.0f} ms: {query['sql'][:160]}\n{plan}")


def main() -> None:
    """Fill the log, then time every page."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--hot", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--search-rounds", type=int, default=3, help="rounds of each search (as superuser)")
    parser.add_argument("--explain", action="store_true", help="print the plans of log queries slower than 20 ms")
    options = parser.parse_args()

    old_config = setup_databases(verbosity=0, interactive=False, aliases={"default"})
    try:
        started = time.perf_counter()
        hot, middle_id = fill(options.rows, options.hot)
        total = AuditLogEntry.objects.count()
        print(f"log: {total:,} entries ({time.perf_counter() - started:.0f} s to fill), hot invoice: {options.hot:,}")
        admin_user = UserFactory(username="bench-admin", is_staff=True, is_superuser=True)
        client = Client()
        client.force_login(admin_user)
        entry = AuditLogEntry.objects.filter(object_id=str(hot.pk)).order_by("-id").first()
        assert entry is not None
        invoice_ct = ContentType.objects.get_for_model(Invoice)
        log = "/admin/testapp/auditlogentry/"
        pages = {
            "history, newest page": f"/admin/testapp/invoice/{hot.pk}/history/",
            "history, middle page": f"/admin/testapp/invoice/{hot.pk}/history/?before={middle_id}",
            "history, oldest page": f"/admin/testapp/invoice/{hot.pk}/history/?after=0",
            "log, unfiltered": log,
            "log, page 100": f"{log}?p=100",
            "log, action": f"{log}?action=UPDATE",
            "log, model + object id": f"{log}?model={invoice_ct.pk}&object_id={hot.pk}",
            "log, user": f"{log}?user=user3",
            "log, changed column (common)": f"{log}?changed=status",
            "log, changed column (absent)": f"{log}?changed=number",
            "log, transaction": f"{log}?transaction={entry.transaction_id}",
            "log, context id": f"{log}?context_id={entry.context_id}",
            "log, one day": f"{log}?at_after=2025-06-01T00:00&at_before=2025-06-02T00:00",
            "log, date hierarchy year": f"{log}?at__year=2025",
            "log, date hierarchy month": f"{log}?at__year=2025&at__month=6",
            "log, date hierarchy day": f"{log}?at__year=2025&at__month=6&at__day=1",
            "log, request path": f"{log}?path=/admin/testapp/invoice/7/",
            "log, search": f"{log}?q=/admin/testapp/invoice/7/change/",
            "log, object id alone": f"{log}?object_id={hot.pk}",
            "entry page": f"{log}{entry.pk}/change/",
        }
        clients = {"superuser": client, "staff": staff_client()}
        for each in clients.values():
            for url in pages.values():  # warm caches (content types, permissions, templates)
                assert each.get(url).status_code == 200, url
        header = "".join(f" {who + ' ms':>14} {'queries':>8}" for who in clients)
        print(f"{'page (median)':<34}{header}")
        for name, url in pages.items():
            row = ""
            for each in clients.values():
                seconds, queries = measure(lambda url=url, each=each: each.get(url), options.rounds)
                row += f" {seconds * 1000:>14.1f} {queries:>8}"
            print(f"{name:<34}{row}")
            if options.explain:
                for who, each in clients.items():
                    print(f"  as {who}:")
                    explain_slow(each, url)
        time_searches(client, log, hot, options.search_rounds)
        print("\nWhat Django's defaults would add per page:")
        checks: dict[str, Callable[[], Any]] = {
            "COUNT(*) of the log": lambda: AuditLogEntry.objects.count(),
            "date hierarchy Min/Max": lambda: AuditLogEntry.objects.aggregate(Min("at"), Max("at")),
            "date hierarchy years": lambda: list(AuditLogEntry.objects.datetimes("at", "year")),
        }
        for name, action in checks.items():
            seconds, queries = measure(action, options.rounds)
            print(f"{name:<34} {seconds * 1000:>10.1f} {queries:>8}")
    finally:
        teardown_databases(old_config, verbosity=0)


if __name__ == "__main__":
    main()
