"""Real-browser tests of "View as of here" and "Revert to before this change": headless Chromium via Playwright.

Every button is clicked in the browser, from the History tab and from the
entry page, and each page is saved as a screenshot under ``test-artifacts/``
in the light and the dark theme (``time-travel-<step>-<theme>.png``).
Skipped when Chromium is missing.
"""

import re

import pytest
from django.urls import NoReverseMatch, reverse

from audit_log.context import audit_context
from tests.browser import ARTIFACTS
from tests.factories import CustomerFactory, InvoiceFactory
from tests.testapp.models import Article, AuditLogEntry, Invoice, Tag

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

THEMES = ("light", "dark")


def shoot(page, step, theme):
    page.screenshot(path=str(ARTIFACTS / f"time-travel-{step}-{theme}.png"), full_page=True)
    # Nothing may be wider than the screen: the page scrolls vertically only.
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1"), (step, theme)


@pytest.fixture
def invoice(user):
    """An invoice created, sent, then paid with a new amount and notes: three entries in three transactions."""
    with audit_context("test", performed_by=user):
        invoice = InvoiceFactory(number="INV-42", customer=CustomerFactory(name="ACME"), amount="10.50", notes="Boxes")
        invoice.status = "sent"
        invoice.save()
        invoice.status, invoice.amount, invoice.notes = "paid", "12.00", "Boxes, <b>fragile</b>"
        invoice.save()
    return invoice


@pytest.mark.parametrize("theme", THEMES)
def test_browser_history_as_of_then_revert(logged_in, invoice, theme):
    created, sent, _paid = AuditLogEntry.objects.filter(table_name="testapp_invoice").order_by("id")
    page = logged_in(f"/admin/testapp/invoice/{invoice.pk}/history/", color_scheme=theme)
    rows = page.locator("tr.audit-log-entry")
    assert rows.count() == 3
    assert page.locator(f"#audit-log-entry-{created.pk} a.audit-log-revert").count() == 0  # the creation
    shoot(page, "history", theme)

    # The History tab's "View as of here" of the "sent" row: the admin's own form, read-only.
    page.locator(f"#audit-log-entry-{sent.pk} a.audit-log-as-of").click()
    page.wait_for_url(re.compile(rf"/history/{sent.pk}/as-of/$"))
    assert page.locator("select[name=status]").is_disabled()
    assert page.locator("select[name=status]").input_value() == "sent"
    assert page.locator("input[name=amount]").input_value() == "10.50"
    since = page.locator(".audit-log-since tr.audit-log-row", has_text="Status")
    assert (since.locator(".audit-log-old").inner_text(), since.locator(".audit-log-new").inner_text()) == (
        "Sent",
        "Paid",
    )
    shoot(page, "as-of", theme)

    # Its "Revert to before this change" (before "sent": the draft) asks first, listing the fields.
    page.locator(".submit-row a.audit-log-revert").click()
    page.wait_for_url(re.compile(rf"/history/{sent.pk}/revert/$"))
    labels = page.locator(".audit-log-revert-changes th.audit-log-field").all_inner_texts()
    assert sorted(labels) == ["Amount", "Notes", "Status"]
    shoot(page, "revert-confirm", theme)

    page.click("input[name=_revert]")
    new = AuditLogEntry.objects.order_by("-id").first()
    page.wait_for_url(re.compile(rf"/auditlogentry/{new.pk}/change/$"))
    assert "was reverted" in page.locator(".messagelist").inner_text()
    assert (new.action, new.context_type, new.context["reverted_entry"]) == ("UPDATE", "revert", sent.pk)
    assert Invoice.objects.get(pk=invoice.pk).status == "draft"
    shoot(page, "reverted", theme)


@pytest.mark.parametrize("theme", THEMES)
def test_browser_entry_page_buttons(logged_in, invoice, theme):
    paid = AuditLogEntry.objects.filter(table_name="testapp_invoice").order_by("id").last()
    entry_page = f"/admin/testapp/auditlogentry/{paid.pk}/change/"
    page = logged_in(entry_page, color_scheme=theme)
    tools = page.locator(".audit-log-entry-actions a")
    # The admin's object tools show their labels in capitals.
    assert [text.lower() for text in tools.all_inner_texts()] == ["view as of here", "revert to before this change"]
    shoot(page, "entry", theme)

    page.locator(".audit-log-entry-actions a", has_text=re.compile("view as of here", re.I)).click()
    page.wait_for_url(re.compile(rf"/history/{paid.pk}/as-of/$"))
    assert page.locator("select[name=status]").input_value() == "paid"
    assert "Nothing the log records has changed since." in page.locator(".audit-log-since").inner_text()

    page.goto(page.url.split("/admin/")[0] + entry_page)
    page.locator(".audit-log-entry-actions a", has_text=re.compile("revert", re.I)).click()
    page.wait_for_url(re.compile(rf"/history/{paid.pk}/revert/$"))
    page.click("input[name=_revert]")
    page.wait_for_url(re.compile(r"/auditlogentry/\d+/change/$"))
    assert Invoice.objects.get(pk=invoice.pk).status == "sent"


@pytest.mark.parametrize("theme", THEMES)
def test_browser_deleted_object_as_of_and_restore_button(logged_in, invoice, theme):
    pk = invoice.pk
    invoice.delete()
    deleted = AuditLogEntry.objects.get(table_name="testapp_invoice", object_id=str(pk), action="DELETE")
    page = logged_in(f"/admin/testapp/auditlogentry/{deleted.pk}/change/", color_scheme=theme)
    try:
        restore = reverse("admin:testapp_invoice_audit_recover_preview", args=[deleted.pk])
    except NoReverseMatch:
        restore = None
    assert page.locator(".audit-log-entry-actions a.addlink").count() == (1 if restore else 0)
    assert page.locator(".audit-log-entry-actions a", has_text=re.compile("revert", re.I)).count() == 0
    shoot(page, "entry-deleted", theme)

    page.locator(".audit-log-entry-actions a", has_text=re.compile("view as of here", re.I)).click()
    page.wait_for_url(re.compile(rf"/history/{deleted.pk}/as-of/$"))
    assert page.locator("select[name=status]").input_value() == "paid"
    assert "The object no longer exists." in page.locator("#content-main").inner_text()
    shoot(page, "as-of-deleted", theme)

    if restore:
        page.go_back()
        page.locator(".audit-log-entry-actions a.addlink").click()
        page.wait_for_url(re.compile(re.escape(restore) + "$"))


@pytest.mark.parametrize("theme", THEMES)
def test_browser_revert_of_tags(logged_in, user, theme):
    light, single, decaf = (Tag.objects.create(name=name) for name in ("light-roast", "single-origin", "decaf"))
    with audit_context("test", performed_by=user):
        article = Article.objects.create(title="Ethiopia")
        article.tags.add(light, single)
        article.title = "Ethiopia Guji"
        article.save()
        article.tags.set([light, decaf])
    retitle = AuditLogEntry.objects.get(table_name="testapp_article", action="UPDATE")
    page = logged_in(f"/admin/testapp/article/{article.pk}/history/{retitle.pk}/revert/", color_scheme=theme)
    tags = page.locator(".audit-log-revert-changes td.audit-log-m2m")
    assert tags.locator("ins").all_inner_texts() == ["+\xa0single-origin"]
    assert tags.locator("del").all_inner_texts() == ["\u2212\xa0decaf"]  # a minus sign
    shoot(page, "revert-tags", theme)
    page.click("input[name=_revert]")
    page.wait_for_url(re.compile(r"/auditlogentry/\d+/change/$"))
    assert set(article.tags.all()) == {light, single}
    assert Article.objects.get(pk=article.pk).title == "Ethiopia"
