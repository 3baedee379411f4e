"""The shop's admin. ``AuditLogHistoryMixin`` makes every "History" button show the object's audit log."""

from django.contrib import admin, messages
from django.db import transaction
from django.utils.crypto import get_random_string

from audit_log_admin.admin import AuditLogHistoryMixin

from . import timeline
from .models import Customer, Order, OrderLine, Product, Shipment, Tag


@admin.register(Customer)
class CustomerAdmin(AuditLogHistoryMixin, admin.ModelAdmin):
    list_display = ("name", "email", "phone", "is_vip", "customer_since")
    list_filter = ("is_vip",)
    search_fields = ("name", "email")
    readonly_fields = ("password", "last_login")
    actions = ("reset_password",)

    @admin.action(description="Reset the storefront password of the selected customers")
    def reset_password(self, request, queryset):
        with transaction.atomic():
            for customer in queryset:
                customer.set_password(get_random_string(16))
                customer.save(update_fields=["password"])
        self.message_user(request, f"Reset {len(queryset)} password(s); the log shows only that they changed.")


class OrderLineInline(admin.TabularInline):
    model = OrderLine
    fields = ("product", "product_name", "quantity", "unit_price")
    autocomplete_fields = ("product",)
    extra = 0


class ShipmentInline(admin.StackedInline):
    model = Shipment
    fields = ("carrier", "tracking_number", "shipped_at", "delivered_on", "delivery_window_start")
    extra = 0


@admin.register(Order)
class OrderAdmin(AuditLogHistoryMixin, admin.ModelAdmin):
    list_display = ("number", "customer", "status", "placed_at", "total")
    list_filter = ("status",)
    search_fields = ("number", "customer__name")
    autocomplete_fields = ("customer",)
    readonly_fields = ("total",)
    inlines = (OrderLineInline, ShipmentInline)
    actions = ("mark_shipped",)

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        form.instance.recalculate_total()  # same request, same transaction: the log groups them

    @admin.action(description="Mark the selected paid orders as shipped")
    def mark_shipped(self, request, queryset):
        count = queryset.filter(status=Order.Status.PAID).update(status=Order.Status.SHIPPED)
        # The shop's clock: the real time, or the simulated day while seed_demo tells its story. Whole
        # seconds, as precise as the admin's time input.
        Shipment.objects.filter(order__in=queryset, shipped_at__isnull=True).update(shipped_at=timeline.now())
        level = messages.SUCCESS if count else messages.WARNING
        self.message_user(request, f"Marked {count} order(s) as shipped.", level)


@admin.register(Tag)
class TagAdmin(AuditLogHistoryMixin, admin.ModelAdmin):
    list_display = ("name",)
    search_fields = ("name",)


@admin.register(Product)
class ProductAdmin(AuditLogHistoryMixin, admin.ModelAdmin):
    list_display = ("sku", "name", "category", "status", "price", "stock", "is_featured")
    list_editable = ("price", "stock")
    list_filter = ("category", "status", "is_featured", "tags")
    search_fields = ("sku", "name")
    filter_horizontal = ("tags",)


@admin.register(OrderLine)
class OrderLineAdmin(AuditLogHistoryMixin, admin.ModelAdmin):
    list_display = ("order", "product_name", "quantity", "unit_price")
    list_select_related = ("order",)
    autocomplete_fields = ("order", "product")


@admin.register(Shipment)
class ShipmentAdmin(AuditLogHistoryMixin, admin.ModelAdmin):
    list_display = ("__str__", "order", "carrier", "shipped_at", "delivered_on")
    list_filter = ("carrier",)
    autocomplete_fields = ("order",)
