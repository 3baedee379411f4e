"""Real-browser tests of the log entry's page: the context as labelled rows, the raw JSON behind a disclosure.

Each page is saved as a screenshot under ``test-artifacts/`` in the light
theme, the dark theme and at phone width. Skipped when Chromium is missing.
"""

import io
import re

import pytest
from django.core.management import call_command

from tests.admin.test_browser import shoot
from tests.factories import CustomerFactory, InvoiceFactory
from tests.testapp.models import AuditLogEntry

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def context_rows(page):
    """The context module's rows as ``{label: value}``."""
    rows = page.locator(".audit-log-context-module .form-row")
    labels = [label.rstrip(":") for label in rows.locator("label").all_inner_texts()]
    return dict(zip(labels, rows.locator(".readonly").all_inner_texts(), strict=True))


def assert_raw_context_opens(page, text):
    raw = page.locator("details.audit-log-raw-context")
    assert raw.get_attribute("open") is None
    assert not raw.locator("pre").is_visible()
    raw.locator("summary", has_text="Raw context").click()
    assert raw.get_attribute("open") is not None
    assert text in raw.locator("pre").inner_text()


def test_browser_entry_page_of_a_request(logged_in, user):
    invoice = InvoiceFactory(number="INV-7", customer=CustomerFactory(name="ACME"))
    page = logged_in(f"/admin/testapp/invoice/{invoice.pk}/change/?_changelist_filters=status%3Ddraft")
    page.select_option("#id_status", "paid")
    page.click("input[name=_save]")
    page.wait_for_url(re.compile(r"/admin/testapp/invoice/"))
    entry = AuditLogEntry.objects.get(context_type="http-request")

    path = f"/admin/testapp/auditlogentry/{entry.pk}/change/"
    page.goto(page.url.split("/admin/")[0] + path)
    assert page.locator("h2").first.inner_text() == "Changed: Invoice INV-7"
    assert page.locator(".breadcrumbs").inner_text().endswith("Changed: Invoice INV-7")
    rows = context_rows(page)
    assert rows["Type"] == "Request"
    assert rows["Method"] == "POST"
    assert rows["Path"] == f"/admin/testapp/invoice/{invoice.pk}/change/"
    assert rows["Remote address"] == "127.0.0.1"
    params = page.locator("table.audit-log-context-items tr")
    assert params.locator("th").all_inner_texts() == ["_changelist_filters"]
    assert params.locator("td").all_inner_texts() == ["status=draft"]
    assert_raw_context_opens(page, '"method": "POST"')

    shoot(logged_in, path, "entry-request")


def test_browser_entry_page_of_a_management_command(logged_in):
    InvoiceFactory(number="INV-8", amount="1.00")
    call_command("bump_amounts", "2.50", "--since=2026-01-01", stdout=io.StringIO())
    entry = AuditLogEntry.objects.get(context_type="management-command")

    path = f"/admin/testapp/auditlogentry/{entry.pk}/change/"
    page = logged_in(path)
    rows = context_rows(page)
    assert rows["Type"] == "Management command"
    assert rows["Command"] == "bump_amounts"
    options = page.locator("table.audit-log-context-items tr")
    assert options.locator("th").all_inner_texts() == ["amount", "since"]  # not the options left unset
    assert options.locator("td").all_inner_texts() == ["2.50", "2026-01-01"]
    assert_raw_context_opens(page, '"command": "bump_amounts"')

    shoot(logged_in, path, "entry-command")


def test_browser_entry_page_of_a_change_without_context(logged_in):
    InvoiceFactory(number="INV-9")  # outside any audit context: the trigger records the session
    entry = AuditLogEntry.objects.get()

    path = f"/admin/testapp/auditlogentry/{entry.pk}/change/"
    page = logged_in(path)
    rows = context_rows(page)
    assert rows["Type"] == "No context"
    assert rows["Database user"] == entry.context["db_user"]
    assert rows["Client address"] == "127.0.0.1"  # stored as 127.0.0.1/32
    assert "Application" in rows
    assert_raw_context_opens(page, '"client_addr": "127.0.0.1/32"')

    shoot(logged_in, path, "entry-no-context")
