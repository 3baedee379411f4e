import pytest
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.urls import reverse

from audit_log.context import audit_context
from tests.factories import CustomerFactory, InvoiceFactory, UserFactory
from tests.testapp.models import AuditLogEntry


@pytest.fixture
def superuser(db):
    return UserFactory(username="root", is_staff=True, is_superuser=True)


@pytest.fixture
def superuser_client(client, superuser):
    client.force_login(superuser)
    return client


@pytest.fixture
def make_staff(db):
    """Create a staff user with the given permissions ("app_label.codename")."""

    def make(username, *permissions):
        user = UserFactory(username=username, is_staff=True)
        for permission in permissions:
            app_label, codename = permission.split(".")
            user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
        return user

    return make


@pytest.fixture
def customer(user):
    with audit_context("test", performed_by=user):
        return CustomerFactory(name="ACME")


@pytest.fixture
def invoice(user, customer):
    """An invoice created and then changed twice by ``user``: three entries."""
    with audit_context("test", performed_by=user, context={"task": "fixture"}):
        invoice = InvoiceFactory(number="INV-1", customer=customer, amount="10.50", notes="first")
        invoice.status = "sent"
        invoice.save()
        invoice.status = "paid"
        invoice.amount = "12.00"
        invoice.save()
    return invoice


@pytest.fixture
def change_invoice(user):
    """Change an invoice ``times`` times (one entry each)."""

    def change(invoice, times, **context):
        with audit_context("test", performed_by=user, **context):
            for number in range(times):
                invoice.notes = f"note {number}"
                invoice.save(update_fields=["notes"])

    return change


@pytest.fixture
def log_url():
    def url(**params):
        from django.http import QueryDict

        query = QueryDict(mutable=True)
        query.update(params)
        base = reverse("admin:testapp_auditlogentry_changelist")
        return f"{base}?{query.urlencode()}" if params else base

    return url


@pytest.fixture
def entry_url():
    def url(entry):
        return reverse("admin:testapp_auditlogentry_change", args=[entry.pk])

    return url


@pytest.fixture
def history_url():
    def url(obj, query=""):
        opts = obj._meta
        return reverse(f"admin:{opts.app_label}_{opts.model_name}_history", args=[obj.pk]) + query

    return url


@pytest.fixture
def invoice_ct(db):
    from tests.testapp.models import Invoice

    return ContentType.objects.get_for_model(Invoice)


@pytest.fixture
def latest_entry(db):
    def latest(**filters):
        return AuditLogEntry.objects.filter(**filters).order_by("-id").first()

    return latest
