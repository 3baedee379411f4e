"""The demo history: a few days in a small coffee-and-tea shop, mostly told through the admin.

Every step is a real change: staff submit admin forms (context "http-request",
one transaction per form), a management command reprices coffee, a Celery-like
task fetches a shipping label, a DBA fixes e-mail addresses in psql (context
"unknown"), an ops ticket recalculates order totals in raw SQL inside an
``audit_context``, and some things are deleted, including a staff account.
"""

from __future__ import annotations

import base64
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

from .demo import STAFF, AdminBrowser, ensure_staff, ensure_superuser
from .models import Customer, Order, OrderLine, Product, Shipment, Tag

C = Product.Category
S = Product.Status

#: sku, name, category, status, price, stock, attributes, tags, description
CATALOG = [
    (
        "COF-ETH-250",
        "Ethiopia Yirgacheffe 250 g",
        C.COFFEE,
        S.ACTIVE,
        "14.90",
        40,
        {"origin": "Ethiopia", "process": "washed", "roast": "light"},
        ["single-origin", "light-roast"],
        "Floral and bright, with notes of jasmine, bergamot and lemon. Roasted every Monday in small batches.",
    ),
    (
        "COF-COL-DEC",
        "Decaf Colombia 250 g",
        C.COFFEE,
        S.ACTIVE,
        "12.50",
        12,
        {"origin": "Colombia", "process": "sugarcane decaf", "roast": "medium"},
        ["decaf"],
        "All of the chocolate and caramel, none of the caffeine.",
    ),
    (
        "COF-BRA-1000",
        "Brazil Cerrado 1 kg",
        C.COFFEE,
        S.ACTIVE,
        "39.00",
        25,
        {"origin": "Brazil", "process": "natural", "roast": "medium-dark"},
        ["espresso", "bulk"],
        "Nutty and sweet; our house espresso.",
    ),
    (
        "COF-GUA-250",
        "Guatemala Huehuetenango 250 g",
        C.COFFEE,
        S.ACTIVE,
        "15.50",
        18,
        {"origin": "Guatemala", "process": "washed", "roast": "medium"},
        ["single-origin"],
        "Red apple, milk chocolate and a long, clean finish.",
    ),
    (
        "TEA-SEN-100",
        "Sencha Fukamushi 100 g",
        C.TEA,
        S.ACTIVE,
        "11.00",
        30,
        {"origin": "Japan", "harvest": "first flush"},
        ["green-tea"],
        "Deep-steamed green tea, grassy and sweet.",
    ),
    (
        "TEA-MAT-030",
        "Ceremonial Matcha 30 g",
        C.TEA,
        S.ACTIVE,
        "24.00",
        15,
        {"origin": "Japan", "grade": "ceremonial"},
        ["green-tea", "matcha"],
        "Stone-ground, vivid green, umami-rich.",
    ),
    (
        "BRW-V60-02",
        "Hario V60 dripper, size 02",
        C.BREWING,
        S.ACTIVE,
        "24.90",
        22,
        {"material": "ceramic", "cups": "1-4"},
        ["pour-over"],
        "The classic cone with spiral ribs and one large hole.",
    ),
    (
        "BRW-CHX-06",
        "Chemex 6-cup",
        C.BREWING,
        S.ACTIVE,
        "49.00",
        8,
        {"material": "glass", "capacity_ml": 900},
        ["pour-over", "gift"],
        "Hand-blown glass and a wooden collar.",
    ),
    (
        "BRW-AER-01",
        "AeroPress Original",
        C.BREWING,
        S.ACTIVE,
        "34.90",
        30,
        {"material": "polypropylene"},
        ["travel"],
        "Immersion plus pressure: forgiving and fast.",
    ),
    (
        "GRD-ENC-01",
        "Baratza Encore grinder",
        C.GRINDERS,
        S.ACTIVE,
        "149.00",
        5,
        {"burrs": "conical, 40 mm", "settings": 40},
        ["electric"],
        "The entry-level grinder we recommend most.",
    ),
    (
        "ACC-KET-10",
        "Gooseneck kettle 1 l",
        C.ACCESSORIES,
        S.ACTIVE,
        "39.90",
        14,
        {"material": "stainless steel", "capacity_ml": 1000},
        ["pour-over"],
        "A thin spout for a steady, slow pour.",
    ),
    (
        "ACC-APR-01",
        "Barista apron",
        C.ACCESSORIES,
        S.DRAFT,
        "29.00",
        0,
        {"material": "waxed canvas", "colour": "tobacco"},
        [],
        "Leather straps, two pockets.",
    ),
]

#: name, email, phone, customer since (days ago)
CUSTOMERS = [
    ("Ingrid Berg", "ingrid.berg@example.com", "+47 912 34 567", 820),
    ("Lars Olsen", "Lars.Olsen@Example.com", "+47 934 56 789", 610),
    ("Maja Nilsen", "maja.nilsen@example.com", "", 402),
    ("Sofia Lind", "SOFIA.LIND@example.com", "+46 70 123 45 67", 199),
    ("Jonas Dahl", "jonas.dahl@example.com", "+47 988 77 665", 48),
    ("Test Testesen", "test@example.com", "", 3),
]

#: A 1x1 PNG: the "label" the carrier's API returns.
LABEL_PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


class Story:
    """Tell the demo history step by step, reporting each step through ``report``."""

    def __init__(self, report: Callable[[str], None]) -> None:
        self.report = report
        self.steps = [name for name in dir(self) if name.startswith("step_")]
        # Whole seconds: the admin's date and time inputs drop microseconds,
        # which would otherwise show up as changes on the next save.
        self.now = timezone.now().replace(microsecond=0)

    def tell(self) -> None:
        steps = sorted(self.steps, key=lambda name: int(name.split("_")[1]))
        for number, name in enumerate(steps, 1):
            method = getattr(self, name)
            self.report(f"[{number:2}/{len(steps)}] {method.__doc__.strip()}")
            method()

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

    # -- the story -----------------------------------------------------------------

    def step_01(self) -> None:
        """seed_demo creates the demo superuser and four staff users (the auth tables are not audited)."""
        ensure_superuser()
        for username in STAFF:
            ensure_staff(username)

    def step_02(self) -> None:
        """seed_demo imports the catalog, its tags, the customers and three orders from the old shop (bulk_create)."""
        with transaction.atomic():  # the products and their tags together: one row each in their History tabs
            self.import_catalog()
        today = timezone.localdate()
        customers = []
        for name, email, phone, days in CUSTOMERS:
            customer = Customer(
                name=name, email=email, phone=phone, customer_since=today - datetime.timedelta(days=days)
            )
            customer.set_password(None)  # imported accounts must set a password first
            customers.append(customer)
        Customer.objects.bulk_create(customers)
        # The old shop exported orders without totals: the data fix below repairs them.
        for number, email, status, days, lines in [
            ("SO-1001", "ingrid.berg@example.com", Order.Status.PAID, 6, [("COF-ETH-250", 2), ("BRW-V60-02", 1)]),
            ("SO-1002", "lars.olsen@example.com", Order.Status.PAID, 5, [("GRD-ENC-01", 1)]),
            ("SO-1003", "maja.nilsen@example.com", Order.Status.PLACED, 4, [("COF-COL-DEC", 3), ("TEA-SEN-100", 1)]),
        ]:
            order = Order.objects.create(
                number=number,
                customer=self.customer(email),
                status=status,
                placed_at=self.now - datetime.timedelta(days=days, hours=3),
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

    def step_06(self) -> None:
        """Bob adds a customer and edits another one (phone, VIP flag, notes)."""
        bob = self.browser("bob")
        bob.add(
            Customer,
            {
                "name": "Nora Vik",
                "email": "nora.vik@example.com",
                "phone": "+47 455 12 300",
                "customer_since": timezone.localdate().isoformat(),
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

    def step_07(self) -> None:
        """Bob takes a phone order: the order and its two lines are saved in one request and one transaction."""
        nora = self.customer("nora.vik@example.com")
        placed = timezone.localtime(self.now - datetime.timedelta(days=2))
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

    def step_09(self) -> None:
        """Bob resets two customers' storefront passwords (an admin action; the log only says "changed")."""
        self.browser("bob").action(
            Customer, "reset_password", Customer.objects.filter(name__in=["Ingrid Berg", "Jonas Dahl"])
        )

    def step_10(self) -> None:
        """Carol adds a shipment (a model with a UUID primary key) for the new order."""
        self.browser("carol").add(
            Shipment, {"order": str(self.order("SO-1004").pk), "carrier": Shipment.Carrier.POSTEN}
        )

    def step_11(self) -> None:
        """A background task fetches the shipping label (binary data) and tracking number (context "celery-task")."""
        shipment = Shipment.objects.get(order__number="SO-1004")
        with audit_context("celery-task", context={"task": "shop.tasks.fetch_label", "shipment": str(shipment.pk)}):
            shipment.tracking_number = "70712345678NO"
            shipment.label = LABEL_PNG
            shipment.save(update_fields=["tracking_number", "label"])

    def step_12(self) -> None:
        """Carol marks all paid orders as shipped: one admin action, one UPDATE of several orders."""
        self.browser("carol").action(Order, "mark_shipped", Order.objects.filter(status=Order.Status.PAID))

    def step_13(self) -> None:
        """Carol records the delivery: a date and the delivery window's start time."""
        shipment = Shipment.objects.get(order__number="SO-1004")
        self.browser("carol").change(
            shipment, {"delivered_on": timezone.localdate().isoformat(), "delivery_window_start": "14:00"}
        )

    def step_14(self) -> None:
        """The reprice command raises coffee prices by 8% with one QuerySet.update()."""
        call_command("reprice", category=C.COFFEE, percent=Decimal(8), stdout=io.StringIO())

    def step_15(self) -> None:
        """A DBA lower-cases e-mail addresses in psql: no audit context, so the log says "unknown"."""
        with unattributed_connection("psql") as psql, psql.cursor() as cursor:
            cursor.execute("UPDATE shop_customer SET email = lower(email) WHERE email <> lower(email)")

    def step_16(self) -> None:
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

    def step_17(self) -> None:
        """Dave (a temp) mistypes a price; Alice puts it right; then the admin deletes Dave's account."""
        dripper = self.product("BRW-V60-02")
        self.browser("dave").change(dripper, {"price": "2490.00"})
        self.browser("alice").change(dripper, {"price": "24.90"})
        dave = get_user_model()._default_manager.get_by_natural_key("dave")
        self.browser("admin").delete(dave)

    def step_18(self) -> None:
        """Alice discontinues the decaf and deletes it: its order line loses the link in the same transaction."""
        alice = self.browser("alice")
        decaf = self.product("COF-COL-DEC")
        alice.change(decaf, {"status": S.DISCONTINUED})
        alice.delete(decaf)

    def step_19(self) -> None:
        """Bob cancels an order and deletes a test customer created by mistake."""
        bob = self.browser("bob")
        bob.change(self.order("SO-1003"), {"status": Order.Status.CANCELLED, "note": "Cancelled by phone."})
        bob.delete(self.customer("test@example.com"))

    def step_20(self) -> None:
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
