"""What the admin benchmarks share: filling a log fast on the server, the pages they time, and timing them.

Used by ``tests/admin/benchmark.py`` (one log of ``--rows`` entries) and
``tests/scale_benchmark.py`` (one log grown from 10^5 to 10^7 entries). Import
it after ``django.setup()``.
"""

from __future__ import annotations

import datetime
import re
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from audit_log.context import audit_context
from tests.factories import UserFactory
from tests.testapp.models import AuditLogEntry, Customer, Invoice

#: The admin URL of the log.
LOG = "/admin/testapp/auditlogentry/"


@dataclass(frozen=True)
class Objects:
    """The rows the synthetic entries name: users, one customer, invoices (the first one is the hot one)."""

    users: list[Any]
    customer: Customer
    hot: Invoice
    invoices: int


def create_objects(users: int = 10, invoices: int = 1_000) -> Objects:
    """Create ``users`` users (``user0``...) with consecutive ids, a customer and ``invoices`` invoices."""
    made = [UserFactory(username=f"user{i}") for i in range(users)]
    assert [user.pk for user in made] == list(range(made[0].pk, made[0].pk + users)), "user ids must be consecutive"
    with audit_context("setup", performed_by=made[0]):
        customer = Customer.objects.create(name="Big customer")
        Invoice.objects.bulk_create(Invoice(number=f"B-{i}", customer=customer) for i in range(invoices))
    hot = Invoice.objects.order_by("pk").first()
    assert hot is not None
    return Objects(made, customer, hot, invoices)


@dataclass(frozen=True)
class Mix:
    """How synthetic entries are spread, per 1,000 entries (the rest are invoice UPDATEs by a user)."""

    inserts: int = 0  # INSERT entries
    deletes: int = 0  # DELETE entries
    commands: int = 0  # written by a management command (no user)


#: Every entry an invoice UPDATE made in a request, as ``tests/admin/benchmark.py`` always had it.
UPDATES_ONLY = Mix()
#: Closer to a real site: some creations and deletions, some entries written by commands with no user.
REALISTIC = Mix(inserts=60, deletes=20, commands=50)


def insert_entries(
    objects: Objects,
    first: int,
    last: int,
    *,
    hot_every: int,
    span: datetime.timedelta,
    end: datetime.datetime,
    mix: Mix = UPDATES_ONLY,
) -> None:
    """Insert synthetic entries numbered ``first`` to ``last`` with one ``INSERT ... SELECT`` on the server.

    Entry n's ``at`` grows with n from ``end - span`` to ``end``, so the rows
    of one call lie in time order on disk (as the triggers write them) and the
    BRIN indexes stay useful; a later call over the same span interleaves in
    time with the earlier ones. Every ``hot_every``-th entry is an UPDATE of
    the hot invoice, every 50th (of the rest) a customer's; three entries
    per transaction, ten per context (``n`` keeps transaction and context ids
    unique across calls). Inserting needs no maintenance mode: the log's guard
    refuses only UPDATE and DELETE.

    Args:
        objects: What :func:`create_objects` made.
        first: The number of the first entry (1 for a new log).
        last: The number of the last entry.
        hot_every: One entry in this many is the hot invoice's.
        span: How far back the first entry lies before ``end``.
        end: The time of the last entry.
        mix: The share of INSERT and DELETE entries and of entries with no user.
    """
    invoice_ct = ContentType.objects.get_for_model(Invoice)
    customer_ct = ContentType.objects.get_for_model(Customer)
    table = connection.ops.quote_name(AuditLogEntry._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO {table} (content_type_id, object_id, table_name, action, at, changes, transaction_id,
                                 context_id, context_type, context, performed_by_id, performed_by_label, tenant)
            SELECT CASE WHEN customer THEN %(customer_ct)s ELSE %(invoice_ct)s END,
                   CASE WHEN hot THEN %(hot)s::text
                        WHEN customer THEN %(customer)s::text
                        ELSE (%(hot)s + 1 + n %% (%(invoices)s - 1))::text END,
                   CASE WHEN customer THEN 'testapp_customer' ELSE 'testapp_invoice' END,
                   action,
                   %(end)s - %(span)s + (n - %(first)s + 1) * (%(span)s / (%(last)s - %(first)s + 1)),
                   CASE WHEN action = 'INSERT' THEN jsonb_build_object('number', 'B-' || n, 'status', 'draft',
                                                                       'amount', '0.00', 'notes', '')
                        WHEN action = 'DELETE' THEN jsonb_build_object('number', 'B-' || n, 'status', 'paid',
                                                                       'amount', n || '.00', 'notes', 'paid')
                        WHEN n %% 3 = 0 THEN jsonb_build_object('status', jsonb_build_array('draft', 'sent'))
                        WHEN n %% 3 = 1 THEN jsonb_build_object('amount', jsonb_build_array(n, n + 1))
                        ELSE jsonb_build_object('notes', jsonb_build_array('old text ' || n, 'new text ' || n),
                                                'customer_id', jsonb_build_array(NULL, %(customer)s)) END,
                   1000000 + n / 3,
                   lpad(to_hex(n / 10), 32, '0')::uuid,  -- unique per ten entries, like the core's uuid7()
                   CASE WHEN command THEN 'management-command' ELSE 'http-request' END,
                   CASE WHEN command THEN jsonb_build_object('command', 'import_invoices', 'args', '[]'::jsonb)
                        ELSE jsonb_build_object('method', 'POST',
                                                'path', '/admin/testapp/invoice/' || (n %% 1000) || '/change/',
                                                'query_params', '{{}}'::jsonb, 'remote_addr', '127.0.0.1') END,
                   CASE WHEN command THEN NULL ELSE %(first_user)s + n %% %(users)s END,
                   CASE WHEN command THEN '' ELSE 'user' || (n %% %(users)s) END,
                   ''
            FROM (
                SELECT n, hot, customer, command,
                       CASE WHEN hot OR customer OR n %% 1000 >= %(inserts)s + %(deletes)s THEN 'UPDATE'
                            WHEN n %% 1000 < %(inserts)s THEN 'INSERT' ELSE 'DELETE' END AS action
                FROM (
                    SELECT n, n %% %(every)s = 0 AS hot, n %% %(every)s <> 0 AND n %% 50 = 1 AS customer,
                           (n / 10) %% 1000 < %(commands)s AS command  -- whole contexts are commands
                    FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS n
                ) AS numbered
            ) AS entries
            """,
            {
                "first": first,
                "last": last,
                "every": hot_every,
                "span": span,
                "end": end,
                "hot": objects.hot.pk,
                "customer": objects.customer.pk,
                "invoices": objects.invoices,
                "invoice_ct": invoice_ct.pk,
                "customer_ct": customer_ct.pk,
                "first_user": objects.users[0].pk,
                "users": len(objects.users),
                "inserts": mix.inserts,
                "deletes": mix.deletes,
                "commands": mix.commands,
            },
        )


def vacuum_analyze() -> None:
    """VACUUM ANALYZE the log (outside a transaction, as VACUUM must be): visibility map, statistics, BRIN ranges."""
    connection.set_autocommit(True)
    with connection.cursor() as cursor:
        cursor.execute(f"VACUUM ANALYZE {connection.ops.quote_name(AuditLogEntry._meta.db_table)}")


def hot_entry_ids(objects: Objects) -> tuple[int, int]:
    """Return the id of the hot invoice's middle entry and of its newest one."""
    invoice_ct = ContentType.objects.get_for_model(Invoice)
    ids = AuditLogEntry.objects.filter(content_type=invoice_ct, object_id=str(objects.hot.pk)).order_by("id")
    count = ids.count()
    newest = ids.values_list("id", flat=True)[count - 1]
    return ids.values_list("id", flat=True)[count // 2], newest


def fill(rows: int, hot: int) -> tuple[Invoice, int]:
    """Create invoices and users, then ``rows`` synthetic entries; return the hot invoice and a middle entry id."""
    objects = create_objects()
    now = datetime.datetime.now(datetime.UTC)
    every = max(1, rows // hot)
    insert_entries(objects, 1, rows, hot_every=every, span=datetime.timedelta(days=730), end=now)
    vacuum_analyze()
    middle_id, _ = hot_entry_ids(objects)
    return objects.hot, middle_id


def admin_pages(hot: Invoice, middle_id: int, entry: Any, day: datetime.date) -> dict[str, str]:
    """Return the admin pages to time, by name: the hot invoice's history and the log filtered many ways."""
    invoice_ct = ContentType.objects.get_for_model(Invoice)
    next_day = day + datetime.timedelta(days=1)
    one_day = f"at_after={day:%Y-%m-%d}T00:00&at_before={next_day:%Y-%m-%d}T00:00"
    history = f"/admin/testapp/invoice/{hot.pk}/history/"
    return {
        "history, newest page": history,
        "history, middle page": f"{history}?before={middle_id}",
        "history, oldest page": f"{history}?after=0",
        "log, unfiltered": LOG,
        "log, page 100": f"{LOG}?p=100",
        "log, action": f"{LOG}?action=UPDATE",
        "log, model + object id": f"{LOG}?model={invoice_ct.pk}&object_id={hot.pk}",
        "log, user": f"{LOG}?user=user3",
        "log, changed column (common)": f"{LOG}?changed=status",
        "log, changed column (absent)": f"{LOG}?changed=number",
        "log, transaction": f"{LOG}?transaction={entry.transaction_id}",
        "log, context id": f"{LOG}?context_id={entry.context_id}",
        "log, one day": f"{LOG}?{one_day}",
        "log, date hierarchy year": f"{LOG}?at__year={day.year}",
        "log, date hierarchy month": f"{LOG}?at__year={day.year}&at__month={day.month}",
        "log, date hierarchy day": f"{LOG}?at__year={day.year}&at__month={day.month}&at__day={day.day}",
        "log, request path": f"{LOG}?path=/admin/testapp/invoice/7/",
        "log, search": f"{LOG}?q=/admin/testapp/invoice/7/change/",
        "log, object id alone": f"{LOG}?object_id={hot.pk}",
        "entry page": f"{LOG}{entry.pk}/change/",
    }


def superuser_client() -> Client:
    """Log in a superuser, as the benchmarks request the pages."""
    admin_user = UserFactory(username="bench-admin", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(admin_user)
    return client


def measure(action: Callable[[], Any], rounds: int) -> tuple[float, int]:
    """Return the median seconds of ``action`` and the queries its last run made."""
    seconds, _, queries = measure_with_sql(action, rounds)
    return seconds, queries


def measure_with_sql(action: Callable[[], Any], rounds: int) -> tuple[float, float, int]:
    """Return the median seconds of ``action``, the median seconds its queries took, and its last run's queries.

    The queries' time (as Django's debug cursor measures it: sending, running,
    fetching) is what grows with the log; the rest is Python rendering the
    page, which a busy machine slows as much as the database.
    """
    times, sql_times = [], []
    queries = 0
    for _ in range(rounds):
        with CaptureQueriesContext(connection) as captured:
            start = time.perf_counter()
            action()
            times.append(time.perf_counter() - start)
        queries = len(captured.captured_queries)
        sql_times.append(sum(float(query["time"]) for query in captured.captured_queries))
    return statistics.median(times), statistics.median(sql_times), queries


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
