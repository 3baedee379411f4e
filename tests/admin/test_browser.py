"""Real-browser tests: headless Chromium (Debian's ``chromium`` package) driven by Playwright.

Each page is saved as a screenshot under ``test-artifacts/`` in the light
theme, the dark theme and at phone width. Skipped when Chromium is missing;
set ``CHROMIUM`` to use another binary.
"""

import datetime
import re
from decimal import Decimal

import pytest

from audit_log.context import audit_context
from tests.browser import ARTIFACTS
from tests.factories import CustomerFactory, InvoiceFactory
from tests.testapp.models import AuditLogEntry, Awkward, Invoice

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def shoot(logged_in, path, name):
    """Screenshot ``path`` in the light theme, the dark theme and at phone width."""
    variants = {
        "light": {"color_scheme": "light"},
        "dark": {"color_scheme": "dark"},
        "phone": {"color_scheme": "light", "viewport": {"width": 390, "height": 844}, "is_mobile": True},
    }
    for variant, options in variants.items():
        page = logged_in(path, **options)
        page.screenshot(path=str(ARTIFACTS / f"{name}-{variant}.png"), full_page=True)
        # Nothing may be wider than the screen: the page scrolls vertically only.
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1"), (name, variant)


def test_browser_history_shows_a_change_made_in_the_admin(logged_in, user):
    with audit_context("test", performed_by=user):
        customer = CustomerFactory(name="ACME")
        invoice = InvoiceFactory(
            number="INV-7", customer=customer, notes="Deliver the twelve boxes to the north gate before noon."
        )
    page = logged_in(f"/admin/testapp/invoice/{invoice.pk}/change/")
    page.select_option("#id_status", "paid")
    page.fill("#id_notes", "Deliver the twelve crates to the south gate before noon.")
    page.click("input[name=_save]")
    page.wait_for_url(re.compile(r"/admin/testapp/invoice/$"))

    page.goto(page.url + f"{invoice.pk}/change/")
    page.click("a.historylink")
    page.wait_for_url(re.compile(r"/history/$"))
    newest = page.locator("tr.audit-log-entry").first
    assert "Changed" in newest.locator(".audit-log-what").inner_text()
    assert newest.locator(".audit-log-who").inner_text() == "root"
    assert f"POST /admin/testapp/invoice/{invoice.pk}/change/" in newest.locator(".audit-log-where").inner_text()
    status = newest.locator("tr.audit-log-row", has_text="Status")
    assert status.locator(".audit-log-old").inner_text() == "Draft"
    assert status.locator(".audit-log-new").inner_text() == "Paid"
    notes = newest.locator("tr.audit-log-row", has_text="Notes")
    assert notes.locator("del").all_inner_texts() == ["boxes", "north"]
    assert notes.locator("ins").all_inner_texts() == ["crates", "south"]
    assert Invoice.objects.get().status == "paid"

    shoot(logged_in, f"/admin/testapp/invoice/{invoice.pk}/history/", "history")


def test_browser_log_changelist_filters_by_user_and_action_and_opens_an_entry(logged_in, user, other_user):
    with audit_context("test", performed_by=user, context={"task": "import"}):
        invoice = InvoiceFactory(number="INV-A", customer=CustomerFactory(name="ACME"))
        invoice.status = "sent"
        invoice.save()
    with audit_context("test", performed_by=other_user):
        invoice.status = "paid"
        invoice.save()
    alice_update = AuditLogEntry.objects.get(action="UPDATE", performed_by=user)

    page = logged_in("/admin/testapp/auditlogentry/")
    assert page.locator("#result_list tbody tr").count() == 4
    page.fill("#audit-log-filter-user", "alice")
    page.select_option("#audit-log-filter-action", "UPDATE")
    page.click(".audit-log-filter-form input[type=submit]")
    page.wait_for_url(re.compile(r"action=UPDATE"))
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 1
    assert "Status" in rows.first.inner_text()
    assert page.locator("#audit-log-filter-user").input_value() == "alice"

    rows.first.locator("th a").click()
    page.wait_for_url(re.compile(rf"/auditlogentry/{alice_update.pk}/change/"))
    changes = page.locator(".audit-log-changes-module tr.audit-log-row")
    assert changes.count() == 1
    assert changes.first.locator(".audit-log-old").inner_text() == "Draft"
    assert changes.first.locator(".audit-log-new").inner_text() == "Sent"
    assert page.locator(".audit-log-links a", has_text="Object history").count() == 1

    shoot(logged_in, "/admin/testapp/auditlogentry/?user=alice&action=UPDATE", "changelist")
    shoot(logged_in, f"/admin/testapp/auditlogentry/{alice_update.pk}/change/", "entry")


def test_browser_invalid_filter_shows_an_error_in_place(logged_in, user):
    page = logged_in("/admin/testapp/auditlogentry/?transaction=abc")
    assert page.url.endswith("?transaction=abc")
    assert "Enter a whole number." in page.locator(".audit-log-filter-form").inner_text()
    assert "Invalid filter" in page.locator(".messagelist").inner_text()
    page.screenshot(path=str(ARTIFACTS / "changelist-invalid-filter.png"), full_page=True)


def test_browser_history_shows_every_kind_of_value(logged_in, user):
    with audit_context("test", performed_by=user):
        thing = Awkward.objects.create(
            amount=Decimal("123456789012345.12345"),
            day=datetime.date(2026, 3, 4),
            moment=datetime.datetime(2026, 1, 1, 10, 0, tzinfo=datetime.UTC),
            blob=b"\x00\x01binary",
            tags=["red", "green"],
            data={"nested": {"list": [1, 2.5, None]}, "flag": True},
            text="<script>alert('x')</script> stays text",
            ratio=float("nan"),
        )
        thing.data = {"nested": {"list": [1, 3]}, "flag": False}
        thing.text = "<script>alert('x')</script> still stays text, now longer"
        thing.ratio = 0.5
        thing.save()
    page = logged_in(f"/admin/testapp/awkward/{thing.pk}/history/")
    assert page.locator("script", has_text="alert('x')").count() == 0
    assert "<script>alert('x')</script>" in page.locator(".audit-log-inline-diff").first.inner_text()
    shoot(logged_in, f"/admin/testapp/awkward/{thing.pk}/history/", "history-values")
