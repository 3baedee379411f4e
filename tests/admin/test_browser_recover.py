"""Real-browser tests of "Recover deleted ...": headless Chromium driven by Playwright.

Every step is clicked in the browser (the changelist link, the filter, the
preview, Restore) and saved as a screenshot under ``test-artifacts/``, in the
light and the dark theme (``recover-<step>-<theme>.png``); the list and the
preview also at phone width. Skipped when Chromium is missing.
"""

import re

import pytest

from audit_log.context import audit_context
from tests.browser import ARTIFACTS
from tests.factories import CharThingFactory, CustomerFactory, InvoiceFactory
from tests.testapp.models import AuditLogEntry, CharThing, Invoice

THEMES = ("light", "dark")

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def snap(page, name):
    """Save the whole page; nothing may be wider than the screen (the page scrolls vertically only)."""
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1"), name


def delete_invoices(user, customer, *numbers):
    pks = []
    for number in numbers:
        with audit_context("test", performed_by=user, context={"task": "cleanup"}):
            invoice = InvoiceFactory(number=number, customer=customer, notes=f"Notes of {number}")
            pks.append(invoice.pk)
            invoice.delete()
    return pks


@pytest.mark.parametrize("theme", THEMES)
def test_browser_recover_and_restore_a_deleted_invoice(logged_in, user, other_user, theme):
    customer = CustomerFactory(name="ACME")
    InvoiceFactory(number="INV-LIVE", customer=customer)
    (by_bob,) = delete_invoices(other_user, customer, "INV-BOB")
    older, newest = delete_invoices(user, customer, "INV-OLDER", "INV-NEWEST")

    page = logged_in("/admin/testapp/invoice/", color_scheme=theme)
    link = page.locator("a.audit-log-recover-link")
    assert link.inner_text().lower() == "recover deleted invoices"  # object tools are upper case (CSS)
    snap(page, f"recover-changelist-{theme}")
    link.click()
    page.wait_for_url(re.compile(r"/admin/testapp/invoice/recover/$"))
    rows = page.locator("tr.audit-log-recover-row")
    assert rows.all_inner_texts()[0].startswith("INV-NEWEST")
    assert [row.split("\t")[0] for row in rows.all_inner_texts()] == ["INV-NEWEST", "INV-OLDER", "INV-BOB"]

    page.fill("#audit-log-recover-user", "alice")
    page.click(".audit-log-recover-filters input[type=submit]")
    page.wait_for_url(re.compile(r"user=alice"))
    assert rows.count() == 2
    assert "INV-BOB" not in page.locator(".audit-log-recover-table").inner_text()
    assert rows.first.locator(".audit-log-who").inner_text() == "alice"
    snap(page, f"recover-list-{theme}")

    rows.first.locator("a.audit-log-recover-preview").click()
    page.wait_for_url(re.compile(r"/admin/testapp/invoice/recover/\d+/$"))
    assert page.locator("#id_number").input_value() == "INV-NEWEST"
    assert page.locator("#id_number").is_disabled()
    assert page.locator("#id_customer option:checked").inner_text() == "ACME"
    assert page.locator("#id_notes").input_value() == "Notes of INV-NEWEST"
    snap(page, f"recover-preview-{theme}")

    page.click("input[name=_restore]")
    page.wait_for_url(re.compile(rf"/admin/testapp/invoice/{newest}/change/$"))
    message = page.locator(".messagelist .success")
    assert "was restored" in message.inner_text()
    insert = AuditLogEntry.objects.get(action="INSERT", object_id=str(newest), context_type="restore")
    assert message.locator("a").get_attribute("href") == f"/admin/testapp/auditlogentry/{insert.pk}/change/"
    assert page.locator("#id_number").input_value() == "INV-NEWEST"
    snap(page, f"recover-restored-{theme}")
    assert Invoice.objects.filter(pk=newest).exists()
    assert not Invoice.objects.filter(pk__in=[older, by_bob]).exists()

    # Back in the list, the restored invoice is gone from it.
    page.goto(page.url.split("/admin/")[0] + "/admin/testapp/invoice/recover/")
    assert [row.split("\t")[0] for row in rows.all_inner_texts()] == ["INV-OLDER", "INV-BOB"]


@pytest.mark.parametrize("theme", THEMES)
def test_browser_restore_conflict_is_shown_on_the_preview(logged_in, user, theme):
    with audit_context("test", performed_by=user):
        thing = CharThingFactory(code="K-1", name="the old one")
        thing.delete()
    entry = AuditLogEntry.objects.get(action="DELETE")

    page = logged_in(f"/admin/testapp/charthing/recover/{entry.pk}/", color_scheme=theme)
    assert page.locator("#id_name").input_value() == "the old one"
    CharThing.objects.create(code="K-1", name="a new one")  # the key is taken while the page is open
    page.click("input[name=_restore]")
    page.wait_for_load_state()
    assert page.url.endswith(f"/admin/testapp/charthing/recover/{entry.pk}/")
    errors = page.locator(".audit-log-recover-errors")
    assert "its key has been taken again" in errors.locator(".errorlist").inner_text()
    assert "nothing was written" in errors.inner_text()
    snap(page, f"recover-conflict-{theme}")
    assert CharThing.objects.get(code="K-1").name == "a new one"


def test_browser_recover_pages_fit_a_phone(logged_in, user):
    customer = CustomerFactory(name="ACME with a rather long name for a narrow screen")
    (pk,) = delete_invoices(user, customer, "INV-PHONE")
    entry = AuditLogEntry.objects.get(action="DELETE", object_id=str(pk))
    phone = {"viewport": {"width": 390, "height": 844}, "is_mobile": True}
    snap(logged_in("/admin/testapp/invoice/recover/", **phone), "recover-list-phone")
    snap(logged_in(f"/admin/testapp/invoice/recover/{entry.pk}/", **phone), "recover-preview-phone")
