"""``manage.py reprice --category coffee --percent 8``: change many prices in one UPDATE."""

from decimal import Decimal, InvalidOperation

from django.core.management.base import CommandError
from django.db.models import F, Value
from django.db.models.functions import Greatest, Round

from audit_log.management.base import AuditLoggedCommand
from sandbox.shop.models import Product


def percentage(value: str) -> Decimal:
    try:
        result = Decimal(value)
    except InvalidOperation:
        raise ValueError(value) from None
    if not -90 <= result <= 1000:
        raise ValueError(value)
    return result


class Command(AuditLoggedCommand):
    help = (
        "Raise (or, with a negative percentage, lower) the prices of products in one UPDATE statement. "
        "Every changed price is logged with this command run as its context."
    )

    def add_arguments(self, parser):
        parser.add_argument("--percent", type=percentage, required=True, help="e.g. 8 or -12.5")
        parser.add_argument("--category", choices=Product.Category.values, help="only this category")
        parser.add_argument("--status", choices=Product.Status.values, default=Product.Status.ACTIVE)
        parser.add_argument("--sku-prefix", default="", help="only products whose SKU starts with this")

    def handle(self, *args, percent, category, status, sku_prefix, **options):
        products = Product.objects.filter(status=status)
        if category:
            products = products.filter(category=category)
        if sku_prefix:
            products = products.filter(sku__startswith=sku_prefix)
        factor = Decimal(1) + percent / Decimal(100)
        # One statement, however many rows: the triggers log it as a set too.
        count = products.update(price=Greatest(Round(F("price") * factor, 2), Value(Decimal("0.01"))))
        if not count:
            raise CommandError("No product matches; nothing was repriced.")
        scope = f"{Product.Category(category).label.lower()} " if category else ""
        self.stdout.write(f"Repriced {count} {scope}product(s) by {percent:+}%.")
