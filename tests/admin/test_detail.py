import uuid

import pytest
from django.contrib import admin
from django.contrib.contenttypes.models import ContentType

from audit_log.context import audit_context
from tests.admin.factories import LogEntryFactory
from tests.factories import CustomerFactory, InvoiceFactory
from tests.testapp.models import AuditLogEntry


def detail(response):
    assert response.status_code == 200
    return response.context["audit_log"]


def test_entry_page_shows_the_full_diff_who_and_context(superuser_client, invoice, customer, user, entry_url):
    entry = AuditLogEntry.objects.get(action="INSERT", table_name="testapp_invoice")
    response = superuser_client.get(entry_url(entry))
    info = detail(response)
    rows = {row.label: row.new for row in info.display.diff.rows}
    assert rows["Number"].text == "INV-1"
    assert rows["Customer"].url == f"/admin/testapp/customer/{customer.pk}/change/"
    assert info.display.who.url == f"/admin/auth/user/{user.pk}/change/"
    assert info.context_json == '{\n  "task": "fixture"\n}'
    content = response.content.decode()
    assert "Initial value" in content
    assert "&quot;task&quot;: &quot;fixture&quot;" in content
    assert 'name="_save"' not in content  # read-only: nothing to submit
    assert "<h2>Created: Invoice INV-1</h2>" in content


def test_entry_page_links_to_the_object_its_history_and_related_entries(
    superuser_client, invoice, invoice_ct, entry_url
):
    entry = AuditLogEntry.objects.filter(table_name="testapp_invoice").first()
    links = dict(detail(superuser_client.get(entry_url(entry))).links)
    assert links == {
        "Object": f"/admin/testapp/invoice/{invoice.pk}/change/",
        "Object history": f"/admin/testapp/invoice/{invoice.pk}/history/",
        "All entries of this object": f"/admin/testapp/auditlogentry/?model={invoice_ct.pk}&object_id={invoice.pk}",
        "Entries of this transaction": f"/admin/testapp/auditlogentry/?transaction={entry.transaction_id}",
        "Entries of this context": f"/admin/testapp/auditlogentry/?context_id={entry.context_id}",
    }


def test_entry_page_of_a_deleted_object_links_to_its_entries_only(superuser_client, user, entry_url):
    with audit_context("test", performed_by=user):
        InvoiceFactory(number="GONE").delete()
    entry = AuditLogEntry.objects.get(action="DELETE")
    response = superuser_client.get(entry_url(entry))
    info = detail(response)
    # Named by the row its DELETE entry logged (see test_entry_page.py).
    assert info.display.object.text == "GONE (deleted)"
    assert "<h2>Deleted: Invoice GONE (deleted)</h2>" in response.content.decode()
    assert [label for label, url in info.links] == [
        "All entries of this object",
        "Entries of this transaction",
        "Entries of this context",
    ]
    assert {row.label: row.old.text for row in info.display.diff.rows}["Number"] == "GONE"
    assert info.display.diff.shows_old
    assert not info.display.diff.shows_new


def test_entry_page_lists_the_other_entries_of_its_transaction(superuser_client, db, entry_url):
    first, second, third = (
        LogEntryFactory(transaction_id=77, object_id=str(InvoiceFactory(number=f"INV-{n}").pk)) for n in (1, 2, 3)
    )
    LogEntryFactory(transaction_id=78)
    info = detail(superuser_client.get(entry_url(second)))
    assert info.same_transaction == [
        (entry_url(first), "Changed", "Invoice INV-1"),
        (entry_url(third), "Changed", "Invoice INV-3"),
    ]
    assert not info.more_in_transaction


def test_entry_page_says_when_the_transaction_has_more_entries(superuser_client, db, entry_url, monkeypatch):
    entries = [LogEntryFactory(transaction_id=77) for _ in range(4)]
    monkeypatch.setattr(admin.site.get_model_admin(AuditLogEntry), "same_transaction_limit", 2)
    response = superuser_client.get(entry_url(entries[0]))
    assert len(detail(response).same_transaction) == 2
    assert "More entries of this transaction are in the log." in response.content.decode()


def test_entry_page_shows_custom_entry_fields(superuser_client, db, entry_url):
    entry = LogEntryFactory(tenant="north")
    info = detail(superuser_client.get(entry_url(entry)))
    assert info.extra_fields == [("Tenant", "north")]


def test_entry_page_lists_fields_that_are_never_logged(superuser_client, customer, entry_url):
    entry = AuditLogEntry.objects.get(table_name="testapp_customer")
    response = superuser_client.get(entry_url(entry))
    assert "Not recorded: Last seen" in response.content.decode()


def test_entry_page_escapes_values_and_context(superuser_client, user, entry_url):
    with audit_context("test", performed_by=user, context={"<script>": "<script>alert(1)</script>"}):
        CustomerFactory(name="<script>alert(2)</script>")
    content = superuser_client.get(entry_url(AuditLogEntry.objects.get())).content.decode()
    assert "<script>alert(" not in content
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in content
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in content


def test_entry_page_of_an_entry_whose_model_is_gone(superuser_client, db, entry_url):
    gone = ContentType.objects.create(app_label="gone", model="thing")
    entry = LogEntryFactory(content_type=gone, table_name="gone_thing", object_id="5", changes={"x": [1, 2]})
    lost = LogEntryFactory(content_type_id=987654, table_name="lost_tbl", object_id="6")
    info = detail(superuser_client.get(entry_url(entry)))
    assert info.display.model == "gone_thing"
    assert [row.label for row in info.display.diff.rows] == ["x"]
    assert detail(superuser_client.get(entry_url(lost))).display.object.text == "lost_tbl 6 (deleted)"


def test_entry_page_runs_a_fixed_number_of_queries(superuser_client, invoice, entry_url, django_assert_num_queries):
    entry = AuditLogEntry.objects.get(action="INSERT", table_name="testapp_invoice")
    superuser_client.get(entry_url(entry))
    # session, user, the entry (user and content type joined), its customer, the invoice itself,
    # the other entries of its transaction, their objects (one query per model: the customer)
    with django_assert_num_queries(7):
        superuser_client.get(entry_url(entry))


def test_entry_page_needs_view_permission_on_the_entry_model(client, invoice, entry_url, make_staff):
    entry = AuditLogEntry.objects.get(action="INSERT", table_name="testapp_invoice")
    client.force_login(make_staff("clerk", "testapp.view_invoice"))
    assert client.get(entry_url(entry)).status_code == 403
    client.force_login(make_staff("auditor", "testapp.view_auditlogentry", "testapp.view_invoice"))
    response = client.get(entry_url(entry))
    assert response.status_code == 200
    assert {row.label: row.new.url for row in detail(response).display.diff.rows}["Customer"] == ""  # may not view


def test_entry_page_of_a_missing_entry_redirects_like_django(superuser_client, db):
    response = superuser_client.get("/admin/testapp/auditlogentry/987654/change/")
    assert response.status_code == 302


@pytest.mark.parametrize("context", [{}, {"x": [1, {"y": "z"}]}, ["a", "list"], "text"])
def test_entry_page_context_of_any_shape(superuser_client, db, entry_url, context):
    entry = LogEntryFactory(context=context, context_id=uuid.uuid4())
    assert superuser_client.get(entry_url(entry)).status_code == 200
