from django.contrib import admin

from audit_log_admin.admin import AuditLogHistoryMixin
from tests.testapp import models


@admin.register(models.Customer)
class CustomerAdmin(AuditLogHistoryMixin, admin.ModelAdmin):
    list_display = ("name", "email")
    search_fields = ("name",)


@admin.register(models.Invoice)
class InvoiceAdmin(AuditLogHistoryMixin, admin.ModelAdmin):
    list_display = ("number", "status", "amount", "customer")


@admin.register(models.SpecialInvoice)
class SpecialInvoiceAdmin(AuditLogHistoryMixin, admin.ModelAdmin):
    list_display = ("number", "priority")


@admin.register(models.Awkward)
class AwkwardAdmin(AuditLogHistoryMixin, admin.ModelAdmin):
    pass


@admin.register(models.UUIDThing)
class UUIDThingAdmin(AuditLogHistoryMixin, admin.ModelAdmin):
    pass


@admin.register(models.CharThing)
class CharThingAdmin(AuditLogHistoryMixin, admin.ModelAdmin):
    pass


@admin.register(models.WeirdName)
class WeirdNameAdmin(AuditLogHistoryMixin, admin.ModelAdmin):
    pass


@admin.register(models.Secret)
class SecretAdmin(AuditLogHistoryMixin, admin.ModelAdmin):
    """Staff without its view permission must not see its entries in the log either."""


@admin.register(models.Article)
class ArticleAdmin(AuditLogHistoryMixin, admin.ModelAdmin):
    list_display = ("title",)


@admin.register(models.Tag)
class TagAdmin(admin.ModelAdmin):
    search_fields = ("name",)


@admin.register(models.NotAudited)
class NotAuditedAdmin(admin.ModelAdmin):
    """Left without the mixin: its history stays Django's."""
