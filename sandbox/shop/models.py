"""A small coffee-and-tea shop. Every model is audited: PostgreSQL triggers log each change."""

import uuid
from decimal import Decimal

from django.contrib.auth.hashers import make_password
from django.db import models
from django.db.models import DecimalField, ExpressionWrapper, F, Sum
from django.utils import timezone

from audit_log.fields import AuditLogsField
from audit_log.models import AuditLoggedModel


class Customer(AuditLoggedModel):
    name = models.CharField(max_length=100)
    email = models.EmailField(unique=True)
    phone = models.CharField(max_length=30, blank=True)
    # The storefront login. Its hash never reaches the log (masked), and the
    # frequently touched last_login is left out entirely (excluded).
    password = models.CharField(max_length=128, blank=True)
    last_login = models.DateTimeField(null=True, blank=True)
    is_vip = models.BooleanField("VIP", default=False)
    customer_since = models.DateField(default=timezone.localdate)
    notes = models.TextField(blank=True)

    audit_logs = AuditLogsField(exclude=["last_login"], mask=["password"])

    class Meta:
        ordering = ("name",)

    def __str__(self) -> str:
        return self.name

    def set_password(self, raw_password: str | None) -> None:
        self.password = make_password(raw_password)


class Tag(AuditLoggedModel):
    """What products are filed under. Linking a tag to a product is logged under the product."""

    name = models.SlugField(max_length=30, unique=True)

    class Meta:
        ordering = ("name",)

    def __str__(self) -> str:
        return self.name


class Product(AuditLoggedModel):
    class Category(models.TextChoices):
        COFFEE = "coffee", "Coffee"
        TEA = "tea", "Tea"
        BREWING = "brewing", "Brewing gear"
        GRINDERS = "grinders", "Grinders"
        ACCESSORIES = "accessories", "Accessories"

    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        ACTIVE = "active", "On sale"
        DISCONTINUED = "discontinued", "Discontinued"

    sku = models.CharField("SKU", max_length=20, unique=True)
    name = models.CharField(max_length=200)
    category = models.CharField(max_length=20, choices=Category.choices)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.DRAFT)
    price = models.DecimalField(max_digits=10, decimal_places=2)
    stock = models.PositiveIntegerField(default=0)
    is_featured = models.BooleanField("featured", default=False)
    attributes = models.JSONField(default=dict, blank=True, help_text="Origin, roast, material, capacity ...")
    # Its auto-created table (shop_product_tags) is audited with the product: adding or removing a tag is
    # logged under the product, and its History tab shows the tags added and removed with each save.
    tags = models.ManyToManyField(Tag, blank=True, related_name="products")
    description = models.TextField(blank=True)

    class Meta:
        ordering = ("sku",)

    def __str__(self) -> str:
        return f"{self.name} ({self.sku})"


class Order(AuditLoggedModel):
    class Status(models.TextChoices):
        CART = "cart", "In cart"
        PLACED = "placed", "Placed"
        PAID = "paid", "Paid"
        SHIPPED = "shipped", "Shipped"
        DELIVERED = "delivered", "Delivered"
        CANCELLED = "cancelled", "Cancelled"

    number = models.CharField(max_length=20, unique=True)
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="orders")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PLACED)
    placed_at = models.DateTimeField(null=True, blank=True)
    shipping_address = models.TextField(blank=True)
    total = models.DecimalField(max_digits=12, decimal_places=2, default=Decimal("0.00"))
    note = models.TextField(blank=True)

    class Meta:
        ordering = ("-number",)

    def __str__(self) -> str:
        return self.number

    def recalculate_total(self) -> None:
        """Store the sum of the lines in ``total`` (one UPDATE, logged only if it changed)."""
        amount = ExpressionWrapper(F("quantity") * F("unit_price"), output_field=DecimalField())
        total = self.lines.aggregate(total=Sum(amount))["total"] or Decimal("0.00")
        Order.objects.filter(pk=self.pk).update(total=total)
        self.total = total


class OrderLine(AuditLoggedModel):
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="lines")
    # SET_NULL: deleting a product keeps the orders; the log shows the
    # product_id being cleared in the same transaction as the DELETE.
    product = models.ForeignKey(Product, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    product_name = models.CharField(max_length=200, blank=True, help_text="Filled from the product when left empty.")
    quantity = models.PositiveIntegerField(default=1)
    unit_price = models.DecimalField(max_digits=10, decimal_places=2)

    class Meta:
        ordering = ("order", "id")

    def __str__(self) -> str:
        return f"{self.quantity} x {self.product_name or 'item'} ({self.order_id})"

    def save(self, *args, **kwargs) -> None:
        if not self.product_name and self.product is not None:
            self.product_name = self.product.name
        super().save(*args, **kwargs)


class Shipment(AuditLoggedModel):
    """A parcel. Its primary key is a UUID: the log keys entries by text, so that works like any other."""

    class Carrier(models.TextChoices):
        POSTEN = "posten", "Posten"
        DHL = "dhl", "DHL Express"
        UPS = "ups", "UPS"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="shipments")
    carrier = models.CharField(max_length=10, choices=Carrier.choices)
    tracking_number = models.CharField(max_length=40, blank=True)
    shipped_at = models.DateTimeField(null=True, blank=True)
    delivered_on = models.DateField(null=True, blank=True)
    delivery_window_start = models.TimeField(null=True, blank=True)
    label = models.BinaryField(null=True, blank=True, editable=False, help_text="The carrier's label image.")

    class Meta:
        ordering = ("order", "shipped_at")

    def __str__(self) -> str:
        return f"{self.get_carrier_display()} {self.tracking_number or str(self.id)[:8]}"
