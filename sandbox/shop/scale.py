"""A large history for trying the admin at scale: ``seed_demo --entries 1000000``.

Nothing is written into the log directly: the generator changes the shop's
tables with set-based SQL and bulk ORM calls, and the audit triggers log every
row, as they would in production. What varies is the context of each change:

* catalog, customer and order imports in batches of thousands of rows
  (context "celery-task", one transaction per batch);
* tens of thousands of small staff edits, bulk actions and deletions, each in
  its own transaction with a simulated admin request as its context (the user,
  the path, POST: what ``RequestContextMiddleware`` records; going through
  the real request stack would take hours);
* runs of the real ``reprice`` command (context "management-command"), which
  give every generated product a long price history;
* a stock-sync job connecting without any context (context "unknown").

A few products get thousands of entries each, to try the per-object history
with many pages.
"""

from __future__ import annotations

import io
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connection, transaction
from django.db.models import F, Max, Value
from django.db.models.functions import Concat, Greatest

from audit_log.context import audit_context
from audit_log.loading import get_log_entry_model
from audit_log.sql import quote_ident

from .demo import staff_group
from .models import Customer, Order, OrderLine, Product, Shipment
from .story import unattributed_connection

#: Rows per statement of the imports.
BATCH = 5_000
#: Generated staff users, besides alice, bob and carol.
EXTRA_STAFF = 12
#: Products edited far more often than the rest.
HOT_PRODUCTS = 3


def table(model: Any) -> str:
    """The model's table name, quoted for SQL."""
    return quote_ident(model._meta.db_table)


def last_number(model: Any, column: str, prefix: str, suffix: str = "") -> int:
    """The highest number in ``column`` values ``<prefix><number><suffix>`` of earlier runs (0 if none)."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT coalesce(max(substring({quote_ident(column)} FROM %s)::bigint), 0) FROM {table(model)}
            WHERE {quote_ident(column)} LIKE %s
            """,
            [f"^{prefix}([0-9]+){suffix}$", f"{prefix}%{suffix}"],
        )
        return cursor.fetchone()[0]


def clamp(value: int, low: int, high: int) -> int:
    return max(low, min(high, value))


class Progress:
    """Count generated entries and print a line at most every five seconds."""

    def __init__(self, target: int, write: Callable[[str], None]) -> None:
        self.target = target
        self.write = write
        self.done = 0
        self.started = time.monotonic()
        self.shown = 0.0
        self.phase = ""

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def add(self, count: int, *, force: bool = False) -> None:
        self.done += max(count, 0)
        now = time.monotonic()
        if force or now - self.shown >= 5:
            self.shown = now
            percent = min(100, 100 * self.done // max(self.target, 1))
            done = f"{self.done:>11,} of {self.target:,} entries ({percent:3}%)"
            self.write(f"  {done} after {self.elapsed:5.0f} s: {self.phase}")

    def start(self, phase: str) -> None:
        self.phase = phase
        self.add(0, force=True)


class Generator:
    """Generate at least ``target`` log entries through ordinary writes to the shop's tables."""

    def __init__(self, target: int, write: Callable[[str], None]) -> None:
        self.target = target
        self.progress = Progress(target, write)
        self.rng = random.Random(target)
        self.users: list[Any] = []
        self.products: list[int] = []
        self.hot: list[int] = []
        self.customers: list[int] = []
        self.orders: list[int] = []
        self.active_by_category: dict[str, int] = {}

    def run(self) -> int:
        """Generate the history; return how many entries were written."""
        entries = get_log_entry_model()._default_manager
        first_id = entries.aggregate(last=Max("id"))["last"] or 0
        with connection.cursor() as cursor:
            # Demo data: a crash may lose the last few commits, but every batch
            # no longer waits for its own disk flush.
            cursor.execute("SET synchronous_commit TO off")
        try:
            target = self.target
            self.staff()
            self.import_products(clamp(target // 25, 50, 40_000))
            self.import_customers(clamp(target // 100, 20, 10_000))
            self.import_orders(clamp(target // 30, 20, 35_000))
            self.staff_requests(target // 12)
            self.reprice_until(target)
            written = entries.filter(id__gt=first_id).count()
            # Rows an UPDATE left unchanged write no entry, so the count can fall a little short.
            while written < target and self.reprice_until(self.progress.done + target - written):
                written = entries.filter(id__gt=first_id).count()
            self.progress.start("updating planner statistics")
            with connection.cursor() as cursor:
                for model in (Product, Customer, Order, OrderLine, Shipment, entries.model):
                    cursor.execute(f"ANALYZE {table(model)}")
        finally:
            with connection.cursor() as cursor:
                cursor.execute("RESET synchronous_commit")
        self.progress.done = written
        self.progress.start("done")
        return written

    # -- who ------------------------------------------------------------------------

    def staff(self) -> None:
        user_model = get_user_model()
        group = staff_group()
        names = [f"staff{number:02}" for number in range(1, EXTRA_STAFF + 1)]
        existing = set(user_model._default_manager.filter(username__in=names).values_list("username", flat=True))
        new = []
        for name in names:
            if name not in existing:
                user = user_model(username=name, email=f"{name}@example.com", is_staff=True)
                user.set_unusable_password()  # no hashing: these users only appear in the log
                new.append(user)
        user_model._default_manager.bulk_create(new)
        staff = user_model._default_manager.filter(username__in=[*names, "alice", "bob", "carol"])
        group.user_set.add(*staff)
        self.users = list(staff)

    def request(self, method: str, path: str, **query: list[str]) -> audit_context:
        """A simulated admin request by a random staff user: the context the middleware would record."""
        user = self.rng.choice(self.users)
        address = f"10.0.{user.pk % 4}.{10 + user.pk % 200}"
        context = {"method": method, "path": path, "query_params": query, "remote_addr": address}
        return audit_context("http-request", performed_by=user, context=context)

    @contextmanager
    def task(self, name: str, **details: Any) -> Iterator[Any]:
        """One batch of a background task: its own transaction and context."""
        with (
            audit_context("celery-task", context={"task": name, **details}),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            yield cursor

    # -- imports ----------------------------------------------------------------------

    def import_products(self, count: int) -> None:
        self.progress.start(f"importing {count:,} products")
        offset = last_number(Product, "sku", "GEN-")
        for first in range(1, count + 1, BATCH):
            last = min(first + BATCH - 1, count)
            with self.task("shop.tasks.import_catalog", batch=first // BATCH + 1) as cursor:
                cursor.execute(
                    f"""
                    INSERT INTO {table(Product)}
                        (sku, name, category, status, price, stock, is_featured, attributes, description)
                    SELECT 'GEN-' || lpad((%(offset)s + g)::text, 7, '0'),
                           (ARRAY['Ethiopia', 'Kenya', 'Colombia', 'Brazil', 'Guatemala', 'Peru', 'Rwanda',
                                  'Sumatra'])[1 + g %% 8] || ' lot ' || (%(offset)s + g),
                           (ARRAY['coffee', 'tea', 'brewing', 'grinders', 'accessories'])[1 + g %% 5],
                           CASE WHEN g %% 10 = 0 THEN 'draft' ELSE 'active' END,
                           round((5 + random() * 195)::numeric, 2),
                           floor(random() * 200)::int,
                           g %% 50 = 0,
                           jsonb_build_object('origin', (ARRAY['Ethiopia', 'Kenya', 'Colombia', 'Brazil'])[1 + g %% 4],
                                              'lot', %(offset)s + g),
                           'Generated product for trying the admin at scale.'
                    FROM generate_series(%(first)s, %(last)s) AS g
                    """,
                    {"offset": offset, "first": first, "last": last},
                )
                self.progress.add(cursor.rowcount)
        generated = Product.objects.filter(sku__startswith="GEN-")
        self.products = list(generated.values_list("pk", flat=True))
        self.hot = self.products[:HOT_PRODUCTS]
        for category in Product.Category.values:
            self.active_by_category[category] = generated.filter(category=category, status="active").count()

    def import_customers(self, count: int) -> None:
        self.progress.start(f"importing {count:,} customers")
        offset = last_number(Customer, "email", "customer-", "@example.net")
        for first in range(1, count + 1, BATCH):
            last = min(first + BATCH - 1, count)
            with self.task("shop.tasks.import_customers", batch=first // BATCH + 1) as cursor:
                cursor.execute(
                    f"""
                    INSERT INTO {table(Customer)}
                        (name, email, phone, password, is_vip, customer_since, notes)
                    SELECT (ARRAY['Anna', 'Erik', 'Kari', 'Ole', 'Sara', 'Nils', 'Ida', 'Per'])[1 + g %% 8] || ' '
                               || (ARRAY['Hansen', 'Johansen', 'Larsen', 'Berg', 'Haugen', 'Bakke'])[1 + g %% 6]
                               || ' ' || (%(offset)s + g),
                           'customer-' || (%(offset)s + g) || '@example.net',
                           '',
                           '!' || md5(random()::text),
                           g %% 25 = 0,
                           current_date - floor(random() * 1500)::int,
                           ''
                    FROM generate_series(%(first)s, %(last)s) AS g
                    """,
                    {"offset": offset, "first": first, "last": last},
                )
                self.progress.add(cursor.rowcount)
        self.customers = list(Customer.objects.values_list("pk", flat=True))

    def import_orders(self, count: int) -> None:
        """Orders with one to three lines each, and their totals: three statements per batch."""
        self.progress.start(f"importing {count:,} orders with their lines")
        offset = last_number(Order, "number", "GO-")
        batch = BATCH // 2
        for first in range(1, count + 1, batch):
            last = min(first + batch - 1, count)
            with self.task("shop.tasks.import_orders", batch=first // batch + 1) as cursor:
                cursor.execute(
                    f"""
                    WITH new AS (
                        INSERT INTO {table(Order)}
                            (number, customer_id, status, placed_at, shipping_address, total, note)
                        SELECT 'GO-' || lpad((%(offset)s + g)::text, 8, '0'),
                               (%(customers)s::bigint[])[1 + floor(random() * %(customer_count)s)::int],
                               (ARRAY['placed', 'paid', 'paid', 'shipped', 'delivered', 'delivered',
                                      'cancelled'])[1 + floor(random() * 7)::int],
                               now() - random() * interval '365 days',
                               'Storgata ' || g || E'\\n0155 Oslo',
                               0,
                               ''
                        FROM generate_series(%(first)s, %(last)s) AS g
                        RETURNING id
                    )
                    SELECT count(*), min(id), max(id) FROM new
                    """,
                    {
                        "offset": offset,
                        "first": first,
                        "last": last,
                        "customers": self.customers,
                        "customer_count": len(self.customers),
                    },
                )
                created, low, high = cursor.fetchone()
                cursor.execute(
                    f"""
                    INSERT INTO {table(OrderLine)} (order_id, product_id, product_name, quantity, unit_price)
                    SELECT o.id, p.id, p.name, 1 + (o.id + n) %% 3, p.price
                    FROM {table(Order)} AS o
                    CROSS JOIN generate_series(1, 3) AS n
                    JOIN {table(Product)} AS p
                        ON p.id = (%(products)s::bigint[])[1 + (o.id * 31 + n * 17) %% %(product_count)s]
                    WHERE o.id BETWEEN %(low)s AND %(high)s AND n <= 1 + o.id %% 3
                    """,
                    {"products": self.products, "product_count": len(self.products), "low": low, "high": high},
                )
                lines = cursor.rowcount
                cursor.execute(
                    f"""
                    UPDATE {table(Order)} AS o SET total = l.total
                    FROM (SELECT order_id, sum(quantity * unit_price) AS total FROM {table(OrderLine)}
                          WHERE order_id BETWEEN %(low)s AND %(high)s GROUP BY order_id) AS l
                    WHERE o.id = l.order_id
                    """,
                    {"low": low, "high": high},
                )
                self.progress.add(created + lines + cursor.rowcount)
        self.orders = list(Order.objects.filter(number__startswith="GO-").values_list("pk", flat=True))

    # -- staff at work ---------------------------------------------------------------------

    def staff_requests(self, budget: int) -> None:
        """Small admin changes, each its own request and transaction, until ``budget`` entries are written."""
        self.progress.start(f"simulating staff requests for {budget:,} entries")
        operations = [
            (self.edit_product, 40),
            (self.advance_order, 25),
            (self.edit_customer, 10),
            (self.ship_orders, 10),
            (self.edit_stock_list, 10),
            (self.delete_order, 5),
        ]
        functions, weights = zip(*operations, strict=True)
        written = 0
        while written < budget:
            operation = self.rng.choices(functions, weights)[0]
            count = operation()
            written += count
            self.progress.add(count)

    def edit_product(self) -> int:
        pk = self.rng.choice(self.hot) if self.rng.random() < 0.1 else self.rng.choice(self.products)
        with self.request("POST", f"/admin/shop/product/{pk}/change/"), transaction.atomic():
            changes: dict[str, Any] = {"stock": Greatest(F("stock") + self.rng.randint(-5, 20), Value(0))}
            if self.rng.random() < 0.5:
                changes["price"] = F("price") + Decimal(self.rng.choice(["0.50", "1.00", "-0.50", "2.00"]))
            if self.rng.random() < 0.1:
                changes["is_featured"] = self.rng.random() < 0.5
            return Product.objects.filter(pk=pk, price__gt=3).update(**changes)

    def advance_order(self) -> int:
        pk = self.rng.choice(self.orders)
        following = {"placed": "paid", "paid": "shipped", "shipped": "delivered"}
        with self.request("POST", f"/admin/shop/order/{pk}/change/"), transaction.atomic():
            order = Order.objects.filter(pk=pk).values("status").first()
            if order is None or order["status"] not in following:
                return Order.objects.filter(pk=pk).update(note=Concat(F("note"), Value("Checked. ")))
            return Order.objects.filter(pk=pk).update(status=following[order["status"]])

    def edit_customer(self) -> int:
        pk = self.rng.choice(self.customers)
        with self.request("POST", f"/admin/shop/customer/{pk}/change/"), transaction.atomic():
            phone = f"+47 9{self.rng.randint(10, 99)} {self.rng.randint(10, 99)} {self.rng.randint(100, 999)}"
            return Customer.objects.filter(pk=pk).update(phone=phone, is_vip=self.rng.random() < 0.1)

    def ship_orders(self) -> int:
        """The "mark shipped" action on up to 25 paid orders: one UPDATE of many rows."""
        start = self.rng.randrange(len(self.orders))
        selected = self.orders[start : start + 25]
        with self.request("POST", "/admin/shop/order/", status__exact=["paid"]), transaction.atomic():
            return Order.objects.filter(pk__in=selected, status="paid").update(status="shipped")

    def edit_stock_list(self) -> int:
        """A list_editable save: one UPDATE per row, all in one request and transaction."""
        selected = self.rng.sample(self.products, min(len(self.products), self.rng.randint(5, 15)))
        with self.request("POST", "/admin/shop/product/", category__exact=["coffee"]), transaction.atomic():
            return sum(
                Product.objects.filter(pk=pk).update(stock=Greatest(F("stock") - 1, Value(0)) + 10) for pk in selected
            )

    def delete_order(self) -> int:
        if len(self.orders) <= 1:
            return 0
        index = self.rng.randrange(len(self.orders))
        pk = self.orders[index]
        self.orders[index] = self.orders[-1]
        self.orders.pop()
        with self.request("POST", f"/admin/shop/order/{pk}/delete/"), transaction.atomic():
            _, per_model = Order.objects.filter(pk=pk).delete()
            return sum(per_model.values())

    # -- commands and jobs -------------------------------------------------------------------

    def reprice_until(self, target: int) -> bool:
        """Run the real ``reprice`` command, a category at a time, until ``target`` entries are counted.

        Returns:
            False if there was nothing to reprice.
        """
        self.progress.start("repricing with manage.py reprice")
        categories = [category for category, count in self.active_by_category.items() if count]
        runs = 0
        while self.progress.done < target and categories:
            category = categories[runs % len(categories)]
            percent = Decimal(self.rng.choice([3, 4, 5, -2, -3]))
            call_command("reprice", category=category, percent=percent, sku_prefix="GEN-", stdout=io.StringIO())
            self.progress.add(self.active_by_category[category])
            runs += 1
            if runs % 10 == 0:
                self.progress.add(self.stock_sync())
        return bool(categories)

    def stock_sync(self) -> int:
        """A nightly job that connects on its own, without an audit context: "unknown"."""
        with unattributed_connection("stock-sync") as job, job.cursor() as cursor:
            # No parameters: the DB-API driver leaves "%" alone.
            cursor.execute(f"UPDATE {table(Product)} SET stock = stock + 25 WHERE sku LIKE 'GEN-%' AND stock < 20")
            return cursor.rowcount
