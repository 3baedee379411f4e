import os
import re
from urllib.parse import urlencode

import pytest
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.urls import reverse

from audit_log.context import audit_context
from tests.browser import ARTIFACTS, CHROMIUM_ARGS, MISSING, chromium
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


# --- the browser tests' fixtures (Chromium through Playwright) ---------------------------------------

PASSWORD = "secret"  # a throwaway test user's


@pytest.fixture(scope="module")
def browser():
    path = chromium()
    if path is None:
        pytest.skip(MISSING)
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the ORM calls the tests make
    # between page actions are still plain synchronous code.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        with sync_playwright() as playwright:
            launched = playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
            yield launched
            launched.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def logged_in(browser, live_server):
    """Open a page logged in as a superuser; returns ``open(path, **context_options)``."""
    UserFactory(username="root", password=PASSWORD, is_staff=True, is_superuser=True)
    contexts = []

    def open_page(path, **options):
        context = browser.new_context(viewport=options.pop("viewport", {"width": 1280, "height": 900}), **options)
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(15_000)
        page.goto(f"{live_server.url}/admin/login/?{urlencode({'next': path})}")
        page.fill("#id_username", "root")
        page.fill("#id_password", PASSWORD)
        page.click("input[type=submit]")
        page.wait_for_url(re.compile(re.escape(path.split("?")[0])))
        return page

    yield open_page
    for context in contexts:
        context.close()
