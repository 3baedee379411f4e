"""The "Recover deleted ..." pages: the list of deleted objects, the read-only preview, and Restore."""

import datetime
import re

import pytest
from django.contrib import admin
from django.contrib.messages import get_messages
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from audit_log import history
from audit_log.context import audit_context
from audit_log_admin.views import recover
from tests.admin.factories import LogEntryFactory
from tests.factories import (
    ArticleFactory,
    CharThingFactory,
    CustomerFactory,
    InvoiceFactory,
    SecretFactory,
    TagFactory,
)
from tests.testapp.models import AuditLogEntry, CharThing, Customer, Invoice, NotAudited, SpecialInvoice


def list_url(model=Invoice, **params):
    opts = model._meta
    url = reverse(f"admin:{opts.app_label}_{opts.model_name}_audit_recover")
    if params:
        from django.http import QueryDict

        query = QueryDict(mutable=True)
        query.update(params)
        url += f"?{query.urlencode()}"
    return url


def preview_url(entry, model=Invoice):
    opts = model._meta
    return reverse(f"admin:{opts.app_label}_{opts.model_name}_audit_recover_preview", args=[entry.pk])


def listed(response):
    """The object ids the page lists, in order."""
    return [row.entry.object_id for row in response.context["rows"]]


def delete_entry(obj):
    return AuditLogEntry.objects.get(table_name=obj._meta.db_table, object_id=str(obj.pk), action="DELETE")


@pytest.fixture
def deleted(user):
    """Delete invoices by ``user`` (one transaction each); return them, oldest deletion first."""

    def delete(*numbers, by=None, **fields):
        invoices = []
        for number in numbers:
            with audit_context("test", performed_by=by or user, context={"task": "cleanup"}):
                invoice = InvoiceFactory(number=number, **fields)
                pk = invoice.pk
                invoice.delete()
                invoice.pk = pk
            invoices.append(invoice)
        return invoices

    return delete


@pytest.fixture
def per_page(monkeypatch):
    def set_to(count, model=Invoice):
        monkeypatch.setattr(admin.site.get_model_admin(model), "audit_log_recover_per_page", count, raising=False)

    return set_to


# --- the list --------------------------------------------------------------------------------------


def test_recover_list_shows_deleted_objects_newest_first(superuser_client, deleted, user):
    first, second = deleted("INV-A", "INV-B")
    InvoiceFactory(number="INV-ALIVE")
    response = superuser_client.get(list_url())
    assert response.status_code == 200
    assert listed(response) == [str(second.pk), str(first.pk)]
    row = response.context["rows"][0]
    assert row.label == "INV-B"
    assert row.who.text == "alice"
    assert row.context == "task: cleanup"
    assert row.preview_url == preview_url(delete_entry(second))
    assert row.entry_url == reverse("admin:testapp_auditlogentry_change", args=[row.entry.pk])
    content = response.content.decode()
    assert "INV-ALIVE" not in content
    assert f'href="{row.preview_url}"' in content
    assert "Recover deleted invoices" in content


def test_recover_list_leaves_out_restored_and_reused_keys(superuser_client, deleted, user):
    restored, kept = deleted("INV-R", "INV-K")
    history.restore(delete_entry(restored))
    with audit_context("test", performed_by=user):
        thing = CharThingFactory(code="X-1")
        thing.delete()
        CharThing.objects.create(code="X-1", name="a new one with the old key")
    response = superuser_client.get(list_url())
    assert listed(response) == [str(kept.pk)]
    assert response.context["hidden_count"] == 1
    assert "is not listed" in response.content.decode()
    assert listed(superuser_client.get(list_url(CharThing))) == []


def test_recover_list_shows_an_object_once_for_its_newest_deletion(superuser_client, deleted):
    (invoice,) = deleted("INV-TWICE")
    history.restore(delete_entry(invoice))
    Invoice.objects.get(pk=invoice.pk).delete()
    newest = AuditLogEntry.objects.filter(action="DELETE", object_id=str(invoice.pk)).order_by("-id").first()
    response = superuser_client.get(list_url())
    assert [row.entry.pk for row in response.context["rows"]] == [newest.pk]


def test_recover_list_is_empty_for_a_model_without_deletions(superuser_client, invoice):
    response = superuser_client.get(list_url())
    assert response.context["rows"] == []
    assert "No deleted invoices to recover." in response.content.decode()


def test_recover_list_pages_by_entry_id(superuser_client, deleted, per_page):
    per_page(2)
    invoices = deleted("INV-1", "INV-2", "INV-3", "INV-4", "INV-5")
    newest_first = [str(invoice.pk) for invoice in reversed(invoices)]
    first = superuser_client.get(list_url())
    assert listed(first) == newest_first[:2]
    page = first.context["page"]
    assert not page.newer_url
    second = superuser_client.get(list_url() + page.older_url)
    assert listed(second) == newest_first[2:4]
    third = superuser_client.get(list_url() + second.context["page"].older_url)
    assert listed(third) == newest_first[4:]
    assert not third.context["page"].older_url
    back = superuser_client.get(list_url() + third.context["page"].newer_url)
    assert listed(back) == newest_first[2:4]


def test_recover_list_runs_a_fixed_number_of_queries_per_page(superuser_client, deleted, per_page, customer):
    per_page(3)
    deleted("INV-1", "INV-2", customer=customer)
    superuser_client.get(list_url())  # content types cached

    def count(url):
        with CaptureQueriesContext(connection) as queries:
            assert superuser_client.get(url).status_code == 200
        return len(queries)

    few = count(list_url())
    deleted("INV-3", "INV-4", "INV-5", "INV-6", "INV-7", customer=customer)
    many = count(list_url())
    # session, user, the page, which of its keys exist again
    assert few == many == 4
    older = superuser_client.get(list_url()).context["page"].older_url
    assert count(list_url() + older) == 5  # and whether there is a newer page
    assert count(list_url(user="alice")) == 5  # and the user's id


def test_recover_list_filters_by_who_deleted(superuser_client, deleted, other_user, user):
    (by_alice,) = deleted("INV-A")
    (by_bob,) = deleted("INV-B", by=other_user)
    assert listed(superuser_client.get(list_url(user="bob"))) == [str(by_bob.pk)]
    assert listed(superuser_client.get(list_url(user="alice"))) == [str(by_alice.pk)]
    user.delete()  # found by the name recorded at the time
    assert listed(superuser_client.get(list_url(user="alice"))) == [str(by_alice.pk)]
    assert listed(superuser_client.get(list_url(user="nobody"))) == []


def test_recover_list_filters_by_when(superuser_client):
    now = timezone.now()
    for days, pk in ((3, 901), (2, 902), (0, 903)):
        LogEntryFactory(
            at=now - datetime.timedelta(days=days),
            action="DELETE",
            object_id=str(pk),
            changes={"id": pk, "number": f"OLD-{pk}", "status": "draft", "amount": 1, "notes": ""},
        )
    local = timezone.localtime(now)
    after = (local - datetime.timedelta(days=2, hours=1)).strftime("%Y-%m-%dT%H:%M")
    before = (local - datetime.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    response = superuser_client.get(list_url(at_after=after, at_before=before))
    assert listed(response) == ["902"]
    assert response.context["rows"][0].label == "OLD-902"
    assert listed(superuser_client.get(list_url(at_before=before))) == ["902", "901"]
    assert listed(superuser_client.get(list_url(at_after=after))) == ["903", "902"]


def test_recover_list_shows_a_bad_filter_as_a_form_error(superuser_client, deleted):
    deleted("INV-A")
    response = superuser_client.get(list_url(at_after="2024-05-02T10:00", at_before="2024-05-01T10:00"))
    assert response.status_code == 200
    assert response.context["rows"] == []
    assert "The end is before the start." in response.content.decode()
    response = superuser_client.get(list_url(at_after="yesterday"))
    assert response.context["form"].errors
    assert "Correct the filter" in response.content.decode()


def test_recover_list_needs_view_permission(client, deleted, make_staff):
    deleted("INV-A")
    client.force_login(make_staff("nobody"))
    assert client.get(list_url()).status_code == 403
    client.force_login(make_staff("viewer", "testapp.view_invoice"))
    response = client.get(list_url())
    assert response.status_code == 200
    assert len(response.context["rows"]) == 1
    assert response.context["rows"][0].entry_url == ""  # may not view log entries
    assert not response.context["may_restore"]
    assert "Preview and restore" not in response.content.decode()


def test_recover_list_of_a_model_the_user_may_not_view(client, user, make_staff):
    with audit_context("test", performed_by=user):
        SecretFactory().delete()
    from tests.testapp.models import Secret

    client.force_login(make_staff("viewer", "testapp.view_invoice"))
    assert client.get(list_url(Secret)).status_code == 403


def test_recover_list_labels_odd_entries_without_failing(superuser_client):
    LogEntryFactory(action="DELETE", object_id="77", changes=["not", "a", "row"])
    LogEntryFactory(action="DELETE", object_id="not-a-number", changes={"number": "<b>X</b>"})
    LogEntryFactory(action="DELETE", object_id="78", changes={"id": 78, "number": "INV-78", "amount": "**masked**"})
    response = superuser_client.get(list_url())
    assert response.status_code == 200
    assert [row.label for row in response.context["rows"]] == ["INV-78", "<b>X</b>", "Invoice 77"]
    content = response.content.decode()
    assert "&lt;b&gt;X&lt;/b&gt;" in content
    assert "<b>X</b>" not in content


def test_recover_label_needs_no_query(customer, monkeypatch):
    entry = LogEntryFactory.build(action="DELETE", changes={"number": "INV-9", "customer_id": customer.pk})
    with CaptureQueriesContext(connection) as queries:
        assert recover.entry_label(Invoice, entry) == "INV-9"
    assert len(queries) == 0
    # A __str__ that reads a related object would cost a query per row: refused, model and key instead.
    monkeypatch.setattr(Invoice, "__str__", lambda invoice: f"{invoice.number} for {invoice.customer}")
    assert recover.entry_label(Invoice, entry) == f"Invoice {entry.object_id}"


# --- the preview -------------------------------------------------------------------------------------


def test_recover_preview_renders_the_last_state_read_only(superuser_client, user, customer):
    with audit_context("test", performed_by=user):
        invoice = InvoiceFactory(number="INV-P", customer=customer, amount="10.50", notes="first")
        invoice.status = "sent"
        invoice.notes = "last words"
        invoice.save()
        invoice.delete()
    entry = AuditLogEntry.objects.get(action="DELETE")
    response = superuser_client.get(preview_url(entry))
    assert response.status_code == 200
    form = response.context["fieldsets_html"]
    assert re.search(r'<input type="text" name="number" value="INV-P"[^>]* disabled', form)
    assert '<option value="sent" selected>Sent</option>' in form
    assert re.search(r'name="amount" value="10.50"[^>]* disabled', form)
    assert ">\nlast words</textarea>" in form
    assert f'<option value="{customer.pk}" selected>ACME</option>' in form
    assert "related-widget-wrapper-link" not in form  # no add or change buttons
    content = response.content.decode()
    assert 'name="_restore"' in content
    assert "alice" in content
    assert response.context["entry_url"] == reverse("admin:testapp_auditlogentry_change", args=[entry.pk])
    assert response.context["notes"] == ()


def test_recover_preview_notes_masked_and_excluded_columns(superuser_client, user):
    with audit_context("test", performed_by=user):
        customer = CustomerFactory(name="Masked Ltd", password="secret")
        customer.delete()
    response = superuser_client.get(preview_url(AuditLogEntry.objects.get(action="DELETE"), Customer))
    notes = response.context["notes"]
    assert any(note.startswith("Password: masked in the log") for note in notes)
    assert any(note.startswith("Last seen: left out of the log") for note in notes)
    assert "secret" not in response.context["fieldsets_html"]
    assert 'value="Masked Ltd"' in response.context["fieldsets_html"]


def test_recover_preview_shows_the_links_of_many_to_many_fields(superuser_client, user):
    from tests.testapp.models import Article

    with audit_context("test", performed_by=user):
        light, single = TagFactory(name="light-roast"), TagFactory(name="single-origin")
        TagFactory(name="unused")
        article = ArticleFactory(title="Beans")
        article.tags.set([light, single])
        article.delete()
    entry = AuditLogEntry.objects.get(action="DELETE", table_name="testapp_article")
    response = superuser_client.get(preview_url(entry, Article))
    form = response.context["fieldsets_html"]
    assert f'<option value="{light.pk}" selected>light-roast</option>' in form
    assert f'<option value="{single.pk}" selected>single-origin</option>' in form
    assert ">unused</option>" in form
    assert any(note.startswith("Readers: its links are not logged") for note in response.context["notes"])


def test_recover_preview_notes_related_rows_gone(superuser_client, deleted, customer):
    (invoice,) = deleted("INV-ORPHAN", customer=customer)
    customer_pk = customer.pk
    customer.delete()
    response = superuser_client.get(preview_url(delete_entry(invoice)))
    assert f"Customer: Customer {customer_pk} no longer exists." in response.context["notes"]


def test_recover_preview_is_404_for_other_entries(superuser_client, invoice, deleted):
    (gone,) = deleted("INV-GONE")
    update = AuditLogEntry.objects.filter(action="UPDATE").first()
    assert superuser_client.get(preview_url(update)).status_code == 404
    assert superuser_client.get(preview_url(delete_entry(gone), Customer)).status_code == 404
    assert superuser_client.get(preview_url(AuditLogEntry(pk=10**12))).status_code == 404


def test_recover_preview_of_an_entry_whose_state_cannot_be_built(superuser_client):
    entry = LogEntryFactory(action="DELETE", object_id="77", changes=["not", "a", "row"])
    response = superuser_client.get(preview_url(entry))
    assert response.status_code == 200
    assert response.context["problem"]
    assert response.context["fieldsets_html"] == ""
    assert "not" in response.content.decode()  # the entry's own record, as stored


def test_recover_preview_needs_view_permission(client, deleted, make_staff):
    (invoice,) = deleted("INV-A")
    client.force_login(make_staff("nobody"))
    assert client.get(preview_url(delete_entry(invoice))).status_code == 403


# --- Restore ----------------------------------------------------------------------------------------


def test_restore_reinserts_the_object_with_its_old_key(superuser_client, deleted, customer, superuser):
    (invoice,) = deleted("INV-BACK", customer=customer, notes="kept")
    entry = delete_entry(invoice)
    response = superuser_client.post(preview_url(entry), {"post": "yes"})
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:testapp_invoice_change", args=[invoice.pk])
    back = Invoice.objects.get(pk=invoice.pk)
    assert (back.number, back.customer, back.notes) == ("INV-BACK", customer, "kept")
    insert = AuditLogEntry.objects.filter(action="INSERT", object_id=str(invoice.pk)).order_by("-id").first()
    assert insert.context_type == "restore"
    assert insert.context["restored_entry"] == entry.pk
    assert insert.performed_by == superuser
    message = str(next(iter(get_messages(response.wsgi_request))))
    assert "The invoice “INV-BACK” was restored." in message
    assert reverse("admin:testapp_auditlogentry_change", args=[insert.pk]) in message
    assert listed(superuser_client.get(list_url())) == []


def test_restore_needs_add_permission(client, deleted, make_staff):
    (invoice,) = deleted("INV-A")
    entry = delete_entry(invoice)
    client.force_login(make_staff("viewer", "testapp.view_invoice"))
    response = client.get(preview_url(entry))
    assert response.status_code == 200
    assert 'name="_restore"' not in response.content.decode()
    assert client.post(preview_url(entry), {"post": "yes"}).status_code == 403
    assert not Invoice.objects.filter(pk=invoice.pk).exists()
    client.force_login(make_staff("adder", "testapp.view_invoice", "testapp.add_invoice"))
    assert client.post(preview_url(entry), {"post": "yes"}).status_code == 302
    assert Invoice.objects.filter(pk=invoice.pk).exists()


def test_restore_without_the_buttons_value_restores_nothing(superuser_client, deleted):
    (invoice,) = deleted("INV-A")
    response = superuser_client.post(preview_url(delete_entry(invoice)), {})
    assert response.status_code == 200
    assert response.context["form"].errors
    assert not Invoice.objects.filter(pk=invoice.pk).exists()


def test_restore_conflict_key_taken_is_a_form_error(superuser_client, user):
    with audit_context("test", performed_by=user):
        thing = CharThingFactory(code="K-1", name="old")
        thing.delete()
    entry = AuditLogEntry.objects.get(action="DELETE")
    CharThing.objects.create(code="K-1", name="new")
    before = AuditLogEntry.objects.count()
    response = superuser_client.post(preview_url(entry, CharThing), {"post": "yes"})
    assert response.status_code == 200
    errors = response.context["form"].non_field_errors()
    assert "its key has been taken again" in errors[0]
    content = response.content.decode()
    assert "It was not restored; nothing was written." in content
    assert CharThing.objects.get(code="K-1").name == "new"
    assert AuditLogEntry.objects.count() == before


def test_restore_conflict_referenced_row_gone_is_a_form_error(superuser_client, deleted, customer):
    (invoice,) = deleted("INV-ORPHAN", customer=customer)
    customer.delete()
    before = AuditLogEntry.objects.count()
    response = superuser_client.post(preview_url(delete_entry(invoice)), {"post": "yes"})
    assert response.status_code == 200
    assert "which no longer exists" in response.context["form"].non_field_errors()[0]
    assert not Invoice.objects.filter(pk=invoice.pk).exists()
    assert AuditLogEntry.objects.count() == before


def test_restore_of_an_entry_that_is_no_row_is_a_form_error(superuser_client):
    entry = LogEntryFactory(action="DELETE", object_id="77", changes=["not", "a", "row"])
    response = superuser_client.post(preview_url(entry), {"post": "yes"})
    assert response.status_code == 200
    assert response.context["form"].errors
    assert not Invoice.objects.filter(pk=77).exists()


# --- the changelist link and the URLs -----------------------------------------------------------------


def test_changelist_shows_the_recover_link(superuser_client):
    content = superuser_client.get(reverse("admin:testapp_invoice_changelist")).content.decode()
    assert f'<a href="{list_url()}" class="audit-log-recover-link">Recover deleted invoices</a>' in content
    assert 'class="addlink"' in content  # Django's own object tools stay


def test_changelist_shows_the_recover_link_to_viewers(client, make_staff):
    client.force_login(make_staff("viewer", "testapp.view_invoice"))
    content = client.get(reverse("admin:testapp_invoice_changelist")).content.decode()
    assert "Recover deleted invoices" in content
    assert 'class="addlink"' not in content


def test_changelist_without_the_mixin_or_audit_has_no_link(superuser_client):
    content = superuser_client.get(reverse("admin:testapp_notaudited_changelist")).content.decode()
    assert "Recover deleted" not in content
    with pytest.raises(NoReverseMatch):
        reverse("admin:testapp_notaudited_audit_recover")


def test_changelist_keeps_a_model_admins_own_template(rf, superuser):
    model_admin = admin.site.get_model_admin(Invoice)
    request = rf.get("/")
    request.user = superuser
    from django.template.response import TemplateResponse

    response = recover.changelist_template(model_admin, TemplateResponse(request, "admin/change_list.html"))
    assert response.template_name[-1] == "audit_log_admin/change_list.html"
    assert response.template_name[0] == "admin/testapp/invoice/change_list.html"
    own = type(model_admin)(Invoice, admin.site)
    own.change_list_template = "mine.html"
    response = recover.changelist_template(own, TemplateResponse(request, "mine.html"))
    assert response.template_name == "mine.html"


def test_recover_is_not_offered_for_multi_table_children(superuser_client):
    with pytest.raises(NoReverseMatch):
        reverse("admin:testapp_specialinvoice_audit_recover")
    content = superuser_client.get(reverse("admin:testapp_specialinvoice_changelist")).content.decode()
    assert "Recover deleted" not in content
    assert not recover.recoverable(SpecialInvoice)
    assert not recover.recoverable(NotAudited)
