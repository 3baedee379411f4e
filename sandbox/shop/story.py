"""The demo history: a week in a small coffee-and-tea shop, from the import six days ago to today.

Every step is a real change: staff submit admin forms (context "http-request",
one transaction per form), a management command reprices coffee, a Celery-like
task fetches a shipping label, a DBA fixes e-mail addresses in psql (context
"unknown"), an ops ticket recalculates order totals in raw SQL inside an
``audit_context``, a staff member reverts a colleague's bad edit from the
History tab (context "revert"), and some things are deleted, including a
product (left for the reader to recover) and a staff account.

Each step names its day and hour (``@on(days_ago, "HH:MM")``); the steps run
in order, and the entries of past days are then backdated to them (see
:mod:`sandbox.shop.timeline`).
"""

from __future__ import annotations

import datetime
import io
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import DEFAULT_DB_ALIAS, connection, connections, transaction
from django.utils import timezone

from audit_log.context import audit_context
from audit_log.loading import get_log_entry_model

from .catalog import CATALOG, CUSTOMERS, LABEL_PNG
from .demo import STAFF, AdminBrowser, ensure_staff, ensure_superuser
from .models import Customer, Order, OrderLine, Product, Shipment, Tag
from .timeline import Timeline, now, on, today

C = Product.Category
S = Product.Status


class Story:
    """Tell the demo history step by step, reporting each step through ``report``, then backdate it.

    Args:
        report: Called with one line of text per step.
        timeline: The days the steps happen on (default: the week up to today).
    """

    def __init__(self, report: Callable[[str], None], timeline: Timeline | None = None) -> None:
        self.report = report
        self.timeline = timeline or Timeline()
        self.steps = sorted(
            (name for name in dir(self) if name.startswith("step_")), key=lambda name: int(name.split("_")[1])
        )

    def tell(self) -> None:
        """Run every step on its day, then move the entries of past days to their moments."""
        for number, name in enumerate(self.steps, 1):
            method = getattr(self, name)
            moment = self.timeline.moment(method.when)
            shown = timezone.localtime(moment).strftime("%a %H:%M") if moment else "today"
            self.report(f"[{number:2}/{len(self.steps)}] {shown:9}  {method.__doc__.strip()}")
            with self.timeline.step(moment):
                method()
        moved = self.timeline.backdate()
        self.report(
            f"Backdated the {moved} entries of past days, inside log_maintenance(): the log records that it did."
        )

    # -- helpers -------------------------------------------------------------------

    def product(self, sku: str) -> Product:
        return Product.objects.get(sku=sku)

    def tags(self, *names: str) -> list[str]:
        """The ids of the named tags, as the product form's tag field submits them."""
        return [str(pk) for pk in Tag.objects.filter(name__in=names).values_list("pk", flat=True)]

    def order(self, number: str) -> Order:
        return Order.objects.get(number=number)

    def customer(self, email: str) -> Customer:
        return Customer.objects.get(email__iexact=email)

    def browser(self, username: str) -> AdminBrowser:
        user = get_user_model()._default_manager.get_by_natural_key(username)
        return AdminBrowser(user, STAFF.get(username, ("", "", "10.0.0.2"))[2])

    def import_catalog(self) -> None:
        """Import the products and link them to their tags (one statement for all the links)."""
        products = Product.objects.bulk_create(
            Product(
                sku=sku,
                name=name,
                category=category,
                status=status,
                price=Decimal(price),
                stock=stock,
                attributes=attributes,
                description=description,
            )
            for sku, name, category, status, price, stock, attributes, _, description in CATALOG
        )
        names = sorted({name for *_, labels, _ in CATALOG for name in labels} | {"bestseller"})
        tags = {tag.name: tag for tag in Tag.objects.bulk_create(Tag(name=name) for name in names)}
        # Each link is logged under its product.
        Product.tags.through.objects.bulk_create(
            Product.tags.through(product=product, tag=tags[name])
            for product, (*_, product_tags, _) in zip(products, CATALOG, strict=True)
            for name in product_tags
        )

    # -- six days ago: the import ------------------------------------------------------

    @on(6, "08:30")
    def step_01(self) -> None:
        """seed_demo creates the demo superuser and four staff users (the auth tables are not audited)."""
        ensure_superuser()
        for username in STAFF:
            ensure_staff(username)

    @on(6, "08:45")
    def step_02(self) -> None:
        """seed_demo imports the catalog, its tags, the customers and three orders from the old shop (bulk_create)."""
        with transaction.atomic():  # the products and their tags together: one row each in their History tabs
            self.import_catalog()
        customers = []
        for name, email, phone, days in CUSTOMERS:
            customer = Customer(
                name=name, email=email, phone=phone, customer_since=today() - datetime.timedelta(days=days)
            )
            customer.set_password(None)  # imported accounts must set a password first
            customers.append(customer)
        Customer.objects.bulk_create(customers)
        # The old shop exported orders without totals: the data fix below repairs them. Placed days before the import.
        for number, email, status, days, lines in [
            ("SO-1001", "ingrid.berg@example.com", Order.Status.PAID, 4, [("COF-ETH-250", 2), ("BRW-V60-02", 1)]),
            ("SO-1002", "lars.olsen@example.com", Order.Status.PAID, 3, [("GRD-ENC-01", 1)]),
            ("SO-1003", "maja.nilsen@example.com", Order.Status.PLACED, 2, [("COF-COL-DEC", 3), ("TEA-SEN-100", 1)]),
        ]:
            order = Order.objects.create(
                number=number,
                customer=self.customer(email),
                status=status,
                placed_at=now() - datetime.timedelta(days=days, hours=3),
                shipping_address=f"{self.customer(email).name}\nStorgata {days * 7}\n0155 Oslo",
            )
            OrderLine.objects.bulk_create(
                OrderLine(
                    order=order,
                    product=self.product(sku),
                    product_name=self.product(sku).name,
                    quantity=quantity,
                    unit_price=self.product(sku).price,
                )
                for sku, quantity in lines
            )

    @on(6, "10:20")
    def step_03(self) -> None:
        """Alice edits a coffee in the admin: price, description, JSON attributes and tags (one save)."""
        coffee = self.product("COF-ETH-250")
        self.browser("alice").change(
            coffee,
            {
                "price": "15.90",
                "description": "Floral and bright, with notes of jasmine, bergamot and ripe peach. Roasted every "
                "Monday and Thursday in small batches.",
                "attributes": '{"origin": "Ethiopia", "process": "washed", "roast": "medium-light", '
                '"altitude_m": 2000}',
                "tags": self.tags("single-origin", "bestseller"),  # light-roast out, bestseller in
            },
        )

    @on(6, "14:05")
    def step_04(self) -> None:
        """Alice adds a new coffee as a draft, then puts it on sale and features it."""
        alice = self.browser("alice")
        alice.add(
            Product,
            {
                "sku": "COF-KEN-250",
                "name": "Kenya Nyeri AA 250 g",
                "category": C.COFFEE,
                "status": S.DRAFT,
                "price": "16.90",
                "stock": "0",
                "attributes": '{"origin": "Kenya", "process": "washed"}',
                "tags": self.tags("single-origin"),
                "description": "Blackcurrant, tomato-vine and a syrupy body.",
            },
        )
        alice.change(self.product("COF-KEN-250"), {"status": S.ACTIVE, "stock": "24", "is_featured": "on"})

    # -- five days ago --------------------------------------------------------------------

    @on(5, "09:10")
    def step_05(self) -> None:
        """Carol counts the stock and saves three rows of the product list at once (list_editable)."""
        self.browser("carol").list_edit(
            Product,
            {
                self.product("BRW-CHX-06"): {"stock": "6"},
                self.product("GRD-ENC-01"): {"stock": "4"},
                self.product("TEA-MAT-030"): {"stock": "11"},
            },
        )

    @on(5, "10:30")
    def step_06(self) -> None:
        """Bob adds a customer and edits another one (phone, VIP flag, notes)."""
        bob = self.browser("bob")
        bob.add(
            Customer,
            {
                "name": "Nora Vik",
                "email": "nora.vik@example.com",
                "phone": "+47 455 12 300",
                "customer_since": today().isoformat(),
            },
        )
        bob.change(
            self.customer("ingrid.berg@example.com"),
            {
                "phone": "+47 912 34 500",
                "is_vip": "on",
                "notes": "Prefers light roasts. Ask before substituting.",
            },
        )

    @on(5, "10:52")
    def step_07(self) -> None:
        """Bob takes a phone order: the order and its two lines are saved in one request and one transaction."""
        nora = self.customer("nora.vik@example.com")
        placed = timezone.localtime(now())
        self.browser("bob").add(
            Order,
            {
                "number": "SO-1004",
                "customer": str(nora.pk),
                "status": Order.Status.PLACED,
                "placed_at_0": placed.date().isoformat(),
                "placed_at_1": placed.strftime("%H:%M:%S"),
                "shipping_address": "Nora Vik\nKirkeveien 12\n0368 Oslo",
                "lines-TOTAL_FORMS": "2",
                "lines-INITIAL_FORMS": "0",
                "lines-0-product": str(self.product("COF-KEN-250").pk),
                "lines-0-quantity": "1",
                "lines-0-unit_price": "16.90",
                "lines-1-product": str(self.product("ACC-KET-10").pk),
                "lines-1-quantity": "1",
                "lines-1-unit_price": "39.90",
            },
        )

    # -- four days ago --------------------------------------------------------------------

    @on(4, "09:15")
    def step_08(self) -> None:
        """Bob edits that order in one save: marks it paid, changes a quantity, removes a line, adds another."""
        order = self.order("SO-1004")
        kenya, kettle = order.lines.order_by("id")
        self.browser("bob").change(
            order,
            {
                "status": Order.Status.PAID,
                "shipping_address": "Nora Vik\nKirkeveien 12B\n0368 Oslo",
                "note": "Customer called: kettle out, grinder in.",
                "lines-0-id": str(kenya.pk),
                "lines-0-quantity": "2",
                "lines-1-id": str(kettle.pk),
                "lines-1-DELETE": "on",
                "lines-TOTAL_FORMS": "3",
                "lines-2-product": str(self.product("GRD-ENC-01").pk),
                "lines-2-quantity": "1",
                "lines-2-unit_price": "149.00",
            },
        )

    @on(4, "11:40")
    def step_09(self) -> None:
        """Bob resets two customers' storefront passwords (an admin action; the log only says "changed")."""
        self.browser("bob").action(
            Customer, "reset_password", Customer.objects.filter(name__in=["Ingrid Berg", "Jonas Dahl"])
        )

    @on(4, "14:10")
    def step_10(self) -> None:
        """Carol adds a shipment (a model with a UUID primary key) for the new order."""
        self.browser("carol").add(
            Shipment, {"order": str(self.order("SO-1004").pk), "carrier": Shipment.Carrier.POSTEN}
        )

    @on(4, "14:12")
    def step_11(self) -> None:
        """A background task fetches the shipping label (binary data) and tracking number (context "celery-task")."""
        shipment = Shipment.objects.get(order__number="SO-1004")
        with audit_context("celery-task", context={"task": "shop.tasks.fetch_label", "shipment": str(shipment.pk)}):
            shipment.tracking_number = "70712345678NO"
            shipment.label = LABEL_PNG
            shipment.save(update_fields=["tracking_number", "label"])

    # -- three days ago -------------------------------------------------------------------

    @on(3, "08:50")
    def step_12(self) -> None:
        """Carol marks all paid orders as shipped: one admin action, one UPDATE of several orders."""
        self.browser("carol").action(Order, "mark_shipped", Order.objects.filter(status=Order.Status.PAID))

    @on(3, "10:15")
    def step_13(self) -> None:
        """Alice moves the bestseller tag from the Ethiopia to the Kenya: two saves, the tags change again."""
        alice = self.browser("alice")
        alice.change(self.product("COF-KEN-250"), {"tags": self.tags("single-origin", "bestseller")})
        alice.change(self.product("COF-ETH-250"), {"tags": self.tags("single-origin")})

    @on(3, "15:35")
    def step_14(self) -> None:
        """Dave (a summer temp) saves the V60 dripper with a wrong price and the Chemex's description."""
        self.browser("dave").change(
            self.product("BRW-V60-02"), {"price": "2490.00", "description": self.product("BRW-CHX-06").description}
        )

    # -- two days ago ---------------------------------------------------------------------

    @on(2, "08:05")
    def step_15(self) -> None:
        """The reprice command raises coffee prices by 8% with one QuerySet.update()."""
        call_command("reprice", category=C.COFFEE, percent=Decimal(8), stdout=io.StringIO())

    @on(2, "09:20")
    def step_16(self) -> None:
        """Alice undoes Dave's edit from the dripper's History tab: "Revert to before this change"."""
        dripper = self.product("BRW-V60-02")
        daves = (
            get_log_entry_model()
            ._default_manager.filter(
                table_name=Product._meta.db_table,
                object_id=str(dripper.pk),
                action="UPDATE",
                performed_by_label="dave",
            )
            .latest("id")
        )
        self.browser("alice").revert(dripper, daves)

    @on(2, "16:30")
    def step_17(self) -> None:
        """Carol records the delivery: a date and the delivery window's start time."""
        shipment = Shipment.objects.get(order__number="SO-1004")
        self.browser("carol").change(shipment, {"delivered_on": today().isoformat(), "delivery_window_start": "14:00"})

    @on(2, "17:05")
    def step_18(self) -> None:
        """Dave's last day: the admin deletes his account (the log keeps his name)."""
        dave = get_user_model()._default_manager.get_by_natural_key("dave")
        self.browser("admin").delete(dave)

    # -- yesterday ----------------------------------------------------------------------------

    @on(1, "07:45")
    def step_19(self) -> None:
        """A DBA lower-cases e-mail addresses in psql: no audit context, so the log says "unknown"."""
        with unattributed_connection("psql") as psql, psql.cursor() as cursor:
            cursor.execute("UPDATE shop_customer SET email = lower(email) WHERE email <> lower(email)")

    @on(1, "09:30")
    def step_20(self) -> None:
        """Ops ticket OPS-42: raw SQL recalculates the imported orders' totals, inside an audit_context."""
        admin = get_user_model()._default_manager.get_by_natural_key("admin")
        context = {"ticket": "OPS-42", "reason": "orders imported from the old shop had no totals"}
        with audit_context("data-fix", performed_by=admin, context=context), connection.cursor() as cursor:
            cursor.execute(
                """
                UPDATE shop_order SET total = lines.total
                FROM (SELECT order_id, sum(quantity * unit_price) AS total FROM shop_orderline GROUP BY order_id)
                     AS lines
                WHERE shop_order.id = lines.order_id AND shop_order.total = 0
                """
            )

    @on(1, "13:15")
    def step_21(self) -> None:
        """Alice discontinues the decaf and deletes it: its order line loses the link in the same transaction."""
        # It stays deleted: "Recover deleted products" in the admin has it to show.
        alice = self.browser("alice")
        decaf = self.product("COF-COL-DEC")
        alice.change(decaf, {"status": S.DISCONTINUED})
        alice.delete(decaf)

    # -- today, as the demo starts ---------------------------------------------------------

    @on(0)
    def step_22(self) -> None:
        """Bob cancels an order and deletes a test customer created by mistake."""
        bob = self.browser("bob")
        bob.change(self.order("SO-1003"), {"status": Order.Status.CANCELLED, "note": "Cancelled by phone."})
        bob.delete(self.customer("test@example.com"))

    @on(0)
    def step_23(self) -> None:
        """The shop's storefront logs a customer in: last_login is excluded from the log, so nothing is written."""
        Customer.objects.filter(email="maja.nilsen@example.com").update(last_login=timezone.now())


@contextmanager
def unattributed_connection(application_name: str) -> Iterator[Any]:
    """Open a second, plain DB-API connection (autocommit), as another program (psql, a cron job) would.

    No audit context was ever entered on it, so its changes are logged with
    context type "unknown" and the session's details (``application_name`` ...).
    It is a bare driver connection on purpose: Django's wrapper would run
    its connection signals, and the audit-log execute wrappers are exactly
    what such a program does not have.
    """
    wrapper = connections[DEFAULT_DB_ALIAS]
    params = {**wrapper.get_connection_params(), "application_name": application_name}
    raw = wrapper.get_new_connection(params)
    raw.autocommit = True
    try:
        yield raw
    finally:
        raw.close()
