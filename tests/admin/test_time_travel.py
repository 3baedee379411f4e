"""The admin's time travel: "View as of here", "Revert to before this change", and their links."""

import re
from decimal import Decimal
from html import unescape

import pytest
from django.contrib.contenttypes.models import ContentType
from django.contrib.messages import get_messages
from django.db import transaction
from django.urls import NoReverseMatch, reverse

from audit_log.context import audit_context
from tests.factories import CustomerFactory, InvoiceFactory
from tests.testapp.admin import InvoiceAdmin
from tests.testapp.models import Article, AuditLogEntry, Customer, Invoice, Tag

pytestmark = pytest.mark.django_db


def log_of(obj_or_model, pk=None):
    """The entries of one object (its row and its links), oldest first."""
    model = obj_or_model if pk is not None else type(obj_or_model)
    pk = pk if pk is not None else obj_or_model.pk
    content_type = ContentType.objects.get_for_model(model)
    return list(AuditLogEntry.objects.filter(content_type=content_type, object_id=str(pk)).order_by("id"))


def page(name, obj_or_model, entry, pk=None):
    opts = obj_or_model._meta
    return reverse(f"admin:{opts.app_label}_{opts.model_name}_audit_{name}", args=[pk or obj_or_model.pk, entry.pk])


def newest_id():
    return AuditLogEntry.objects.order_by("-id").values_list("id", flat=True).first() or 0


def text(html):
    """The visible text of some HTML, whitespace collapsed."""
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", str(html))).split())


def diff_values(diff):
    """``{label: (old, new)}`` of a formatted diff's field rows."""
    return {row.label: (row.old.text, row.new.text) for row in diff.rows if not row.links}


# --- View as of here -----------------------------------------------------------------------------------


def test_as_of_renders_the_old_values_in_the_admins_fieldsets(superuser_client, invoice):
    _, sent, _ = log_of(invoice)

    response = superuser_client.get(page("as_of", invoice, sent))
    assert response.status_code == 200
    fieldsets = str(response.context["state"].fieldsets)
    # The ModelAdmin's own form and widgets, disabled: status "sent", the amount before the last change.
    assert re.search(r'<select name="status"[^>]*disabled', fieldsets)
    assert re.search(r'<option value="sent" selected>Sent</option>', fieldsets)
    assert re.search(r'name="amount" value="10.50"[^>]*disabled', fieldsets)
    assert re.search(r'name="number" value="INV-1"', fieldsets)
    # What has changed since, as of here then now.
    assert diff_values(response.context["diff"]) == {"Status": ("Sent", "Paid"), "Amount": ("10.50", "12.00")}
    content = response.content.decode()
    assert "Changed since" in content
    assert "As of here" in content
    assert page("revert", invoice, sent) in content


def test_as_of_shows_a_deleted_object_without_a_diff(superuser_client, invoice):
    pk = invoice.pk
    invoice.delete()
    _created, sent, _paid, deleted = log_of(Invoice, pk)

    response = superuser_client.get(page("as_of", Invoice, sent, pk=pk))
    assert response.status_code == 200
    assert re.search(r'<option value="sent" selected>Sent</option>', str(response.context["state"].fieldsets))
    assert response.context["diff"] is None
    assert "The object no longer exists." in response.content.decode()
    assert "Revert to before this change" not in response.content.decode()

    # After its deletion, the object as the deletion found it.
    response = superuser_client.get(page("as_of", Invoice, deleted, pk=pk))
    assert response.status_code == 200
    assert re.search(r'<option value="paid" selected>Paid</option>', str(response.context["state"].fieldsets))
    assert "This change deleted the object" in response.content.decode()


def test_as_of_answers_404_for_an_entry_of_another_object(superuser_client, invoice):
    other = InvoiceFactory()
    assert superuser_client.get(page("as_of", invoice, log_of(other)[0])).status_code == 404
    assert superuser_client.get(page("revert", invoice, log_of(other)[0])).status_code == 404


def test_as_of_needs_the_view_permission(client, make_staff, invoice):
    entry = log_of(invoice)[1]
    client.force_login(make_staff("nobody"))
    assert client.get(page("as_of", invoice, entry)).status_code == 403

    client.force_login(make_staff("viewer", "testapp.view_invoice"))
    response = client.get(page("as_of", invoice, entry))
    assert response.status_code == 200
    assert "Revert to before this change" not in response.content.decode()  # no change permission


def test_as_of_of_a_deleted_object_needs_the_models_view_permission(client, make_staff, invoice):
    pk = invoice.pk
    invoice.delete()
    entry = log_of(Invoice, pk)[1]
    client.force_login(make_staff("nobody"))
    assert client.get(page("as_of", Invoice, entry, pk=pk)).status_code == 403
    client.force_login(make_staff("viewer", "testapp.view_invoice"))
    assert client.get(page("as_of", Invoice, entry, pk=pk)).status_code == 200


def test_as_of_notes_what_the_log_cannot_tell(superuser_client):
    customer = CustomerFactory(name="Ingrid", password="hash-1")
    customer.name = "Ingrid Berg"
    customer.save()

    response = superuser_client.get(page("as_of", customer, log_of(customer)[0]))
    assert response.status_code == 200
    unknown = dict(response.context["state"].unknown)
    assert unknown == {"Password": "masked in the log", "Last seen": "left out of the log"}
    content = text(response.content.decode())
    assert "Password: unknown (masked in the log), shown empty." in content
    assert "hash-1" not in response.content.decode()
    assert diff_values(response.context["diff"]) == {"Name": ("Ingrid", "Ingrid Berg")}


def test_as_of_lists_the_values_when_the_admins_form_fails(superuser_client, invoice, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("this admin cannot build a form for old data")

    monkeypatch.setattr(InvoiceAdmin, "get_form", broken)
    response = superuser_client.get(page("as_of", invoice, log_of(invoice)[1]))
    assert response.status_code == 200
    state = response.context["state"]
    assert state.fieldsets == ""
    assert "cannot show this state" in state.form_error
    assert ("Status", "Sent") in [(label, value.text) for label, value in state.values]


def test_as_of_escapes_values(superuser_client):
    invoice = InvoiceFactory(number="<b>x</b>", notes="<script>alert(1)</script>")
    invoice.notes = "plain"
    invoice.save()

    response = superuser_client.get(page("as_of", invoice, log_of(invoice)[0]))
    content = response.content.decode()
    assert "<script>alert(1)</script>" not in content
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in content


# --- Revert to before this change ---------------------------------------------------------------------


def test_revert_confirmation_lists_exactly_the_fields_that_will_change(superuser_client, invoice):
    paid = log_of(invoice)[2]
    start = newest_id()

    response = superuser_client.get(page("revert", invoice, paid))
    assert response.status_code == 200
    # Now, then the value it will get: only the status and the amount (the notes are the same).
    assert diff_values(response.context["diff"]) == {"Status": ("Paid", "Sent"), "Amount": ("12.00", "10.50")}
    assert set(response.context["difference"].changed_columns) == {"status", "amount"}
    assert 'name="post" value="yes"' in response.content.decode()
    assert newest_id() == start  # a confirmation page writes nothing


def test_revert_confirmation_names_the_fields_it_keeps(superuser_client):
    customer = CustomerFactory(name="Ola", password="hash-1")
    customer.name, customer.password = "Ola Nordmann", "hash-2"
    customer.save()

    response = superuser_client.get(page("revert", customer, log_of(customer)[1]))
    assert diff_values(response.context["diff"]) == {"Name": ("Ola Nordmann", "Ola")}
    assert response.context["kept"] == [("Password", "masked in the log"), ("Last seen", "left out of the log")]
    assert "Password: kept as it is (masked in the log)." in text(response.content.decode())


def test_revert_writes_one_update_in_a_revert_context_and_redirects_to_it(superuser_client, superuser, invoice):
    paid = log_of(invoice)[2]
    start = newest_id()

    response = superuser_client.post(page("revert", invoice, paid), {"post": "yes"})
    new = AuditLogEntry.objects.filter(id__gt=start).get()  # one entry, the row's UPDATE
    assert (new.action, new.context_type, new.performed_by) == ("UPDATE", "revert", superuser)
    assert new.context["reverted_entry"] == paid.pk
    assert new.changes == {"status": ["paid", "sent"], "amount": [Decimal("12.00"), Decimal("10.50")]}
    entry_page = reverse("admin:testapp_auditlogentry_change", args=[new.pk])
    assert response.status_code == 302
    assert response.url == entry_page
    [message] = get_messages(response.wsgi_request)
    assert f'<a href="{entry_page}">' in str(message)
    invoice.refresh_from_db()
    assert (invoice.status, invoice.amount) == ("sent", Decimal("10.50"))


def test_revert_with_nothing_to_change_says_so_and_writes_nothing(superuser_client, invoice, history_url):
    paid = log_of(invoice)[2]
    Invoice.objects.filter(pk=invoice.pk).update(status="sent", amount=Decimal("10.50"))
    start = newest_id()

    response = superuser_client.get(page("revert", invoice, paid))
    assert "there is nothing to revert" in response.content.decode()
    assert 'name="_revert"' not in response.content.decode()
    response = superuser_client.post(page("revert", invoice, paid), {"post": "yes"})
    assert response.status_code == 302
    assert response.url == history_url(invoice)
    assert "nothing was written" in str(next(iter(get_messages(response.wsgi_request))))
    assert newest_id() == start


def test_revert_needs_the_change_permission(client, make_staff, invoice):
    paid = log_of(invoice)[2]
    client.force_login(make_staff("viewer", "testapp.view_invoice"))
    start = newest_id()
    assert client.get(page("revert", invoice, paid)).status_code == 403
    assert client.post(page("revert", invoice, paid), {"post": "yes"}).status_code == 403
    assert newest_id() == start

    client.force_login(make_staff("editor", "testapp.change_invoice"))
    assert client.get(page("revert", invoice, paid)).status_code == 200


def test_revert_only_writes_on_a_confirmed_post(superuser_client, invoice):
    paid = log_of(invoice)[2]
    start = newest_id()
    response = superuser_client.post(page("revert", invoice, paid), {})
    assert response.status_code == 200  # the confirmation again
    assert newest_id() == start


def test_revert_is_csrf_protected(client, superuser, invoice):
    client.handler.enforce_csrf_checks = True
    client.force_login(superuser)
    start = newest_id()
    assert client.post(page("revert", invoice, log_of(invoice)[2]), {"post": "yes"}).status_code == 403
    assert newest_id() == start


def test_revert_conflict_shows_as_a_form_error_and_writes_nothing(superuser_client):
    customer = CustomerFactory(name="Gone")
    invoice = InvoiceFactory(customer=customer, number="F-1")
    invoice.number = "F-2"
    invoice.save()
    customer.delete()  # on_delete=SET_NULL: logged as an UPDATE of the invoice
    rename = log_of(invoice)[1]
    start = newest_id()

    response = superuser_client.post(page("revert", invoice, rename), {"post": "yes"})
    assert response.status_code == 200
    errors = response.context["form"].non_field_errors()
    assert len(errors) == 1
    assert "no longer exists" in errors[0]
    assert "nothing was written" in response.content.decode()
    assert newest_id() == start
    invoice.refresh_from_db()
    assert (invoice.number, invoice.customer_id) == ("F-2", None)


def test_revert_to_before_the_creation_is_refused(superuser_client, invoice):
    created = log_of(invoice)[0]
    response = superuser_client.get(page("revert", invoice, created))
    assert response.status_code == 200
    [error] = response.context["form"].non_field_errors()
    assert "did not exist" in error
    assert 'name="_revert"' not in response.content.decode()
    assert superuser_client.post(page("revert", invoice, created), {"post": "yes"}).status_code == 200
    assert len(log_of(invoice)) == 3


def test_revert_of_a_deleted_object_redirects_like_a_missing_object(superuser_client, invoice):
    pk = invoice.pk
    entry = log_of(invoice)[1]
    invoice.delete()
    response = superuser_client.get(page("revert", Invoice, entry, pk=pk))
    assert response.status_code == 302
    assert response.url == reverse("admin:index")


# --- many-to-many ---------------------------------------------------------------------------------------


@pytest.fixture
def tagged(user):
    """An article tagged light-roast and single-origin, then single-origin swapped for decaf (two transactions)."""
    light, single, decaf = (Tag.objects.create(name=name) for name in ("light-roast", "single-origin", "decaf"))
    with audit_context("test", performed_by=user):
        article = Article.objects.create(title="Ethiopia")
        article.tags.add(light, single)
        with transaction.atomic():
            article.title = "Ethiopia Guji"
            article.save()
            article.tags.remove(single)
            article.tags.add(decaf)
    return article, light, single, decaf


def test_as_of_shows_the_many_to_many_set_of_then(superuser_client, tagged):
    article, light, single, _decaf = tagged
    retitle = next(e for e in log_of(article) if e.table_name == "testapp_article" and e.action == "UPDATE")
    before = AuditLogEntry.objects.filter(pk__lt=retitle.pk, content_type=retitle.content_type).order_by("-id")[0]

    response = superuser_client.get(page("as_of", article, before))
    fieldsets = str(response.context["state"].fieldsets)
    selected = set(re.findall(r'<option value="(\d+)" selected>', fieldsets))
    assert selected == {str(light.pk), str(single.pk)}
    [tags_row] = [row for row in response.context["diff"].rows if row.links]
    assert [(link.added, link.value.text) for link in tags_row.links] == [(True, "decaf"), (False, "single-origin")]


def test_revert_brings_the_many_to_many_set_back(superuser_client, tagged):
    article, light, single, _decaf = tagged
    retitle = next(e for e in log_of(article) if e.table_name == "testapp_article" and e.action == "UPDATE")

    response = superuser_client.get(page("revert", article, retitle))
    diff = response.context["diff"]
    assert diff_values(diff) == {"Title": ("Ethiopia Guji", "Ethiopia")}
    [tags_row] = [row for row in diff.rows if row.links]
    assert [(link.added, link.value.text) for link in tags_row.links] == [(True, "single-origin"), (False, "decaf")]

    start = newest_id()
    superuser_client.post(page("revert", article, retitle), {"post": "yes"})
    assert set(article.tags.all()) == {light, single}
    written = AuditLogEntry.objects.filter(id__gt=start)
    assert {(e.table_name, e.action) for e in written} == {
        ("testapp_article", "UPDATE"),
        ("testapp_article_tags", "INSERT"),
        ("testapp_article_tags", "DELETE"),
    }
    assert {e.context_type for e in written} == {"revert"}


# --- the History tab and the entry page --------------------------------------------------------------


def test_history_tab_links_each_row_where_allowed(client, superuser_client, make_staff, invoice, history_url):
    created, sent, paid = log_of(invoice)
    content = superuser_client.get(history_url(invoice)).content.decode()
    for entry in (created, sent, paid):
        assert page("as_of", invoice, entry) in content
    assert page("revert", invoice, created) not in content  # before its creation the object did not exist
    assert page("revert", invoice, sent) in content
    assert page("revert", invoice, paid) in content

    client.force_login(make_staff("viewer", "testapp.view_invoice"))
    content = client.get(history_url(invoice)).content.decode()
    assert page("as_of", invoice, paid) in content
    assert "/revert/" not in content


def test_history_tab_row_of_a_save_with_its_links_reverts_them_together(superuser_client, tagged, history_url):
    article, *_ = tagged
    retitle = next(e for e in log_of(article) if e.table_name == "testapp_article" and e.action == "UPDATE")
    last_link = log_of(article)[-1]
    content = superuser_client.get(history_url(article)).content.decode()
    assert page("revert", article, retitle) in content  # before the row's oldest entry
    assert page("as_of", article, last_link) in content  # after its newest


def test_as_of_a_rows_newest_link_names_the_save_of_that_row(superuser_client, tagged):
    article, light, _single, decaf = tagged
    retitle = next(e for e in log_of(article) if e.table_name == "testapp_article" and e.action == "UPDATE")
    last_link = log_of(article)[-1]  # the tag added after the save, in its transaction

    response = superuser_client.get(page("as_of", article, last_link))
    assert response.context["entry"].pk == retitle.pk  # "Changed" by the save, not "Created" by the link
    fieldsets = str(response.context["state"].fieldsets)
    assert set(re.findall(r'<option value="(\d+)" selected>', fieldsets)) == {str(light.pk), str(decaf.pk)}


def entry_actions(client, entry):
    response = client.get(reverse("admin:testapp_auditlogentry_change", args=[entry.pk]))
    assert response.status_code == 200
    return [(label, url) for label, url, _ in response.context["audit_log"].actions]


def test_entry_page_offers_the_buttons_the_user_may_use(client, superuser_client, make_staff, invoice):
    created, sent, _ = log_of(invoice)
    assert entry_actions(superuser_client, sent) == [
        ("View as of here", page("as_of", invoice, sent)),
        ("Revert to before this change", page("revert", invoice, sent)),
    ]
    assert entry_actions(superuser_client, created) == [("View as of here", page("as_of", invoice, created))]

    client.force_login(make_staff("viewer", "testapp.view_invoice", "testapp.view_auditlogentry"))
    assert entry_actions(client, sent) == [("View as of here", page("as_of", invoice, sent))]


def test_entry_page_of_a_deletion_offers_restore_when_the_recover_page_exists(superuser_client, invoice):
    pk = invoice.pk
    invoice.delete()
    deleted = log_of(Invoice, pk)[-1]
    try:
        restore = reverse("admin:testapp_invoice_audit_recover_preview", args=[deleted.pk])
    except NoReverseMatch:
        restore = None
    expected = [("View as of here", page("as_of", Invoice, deleted, pk=pk))]
    if restore is not None:
        expected.append(("Restore", restore))
    assert entry_actions(superuser_client, deleted) == expected


def test_entry_page_of_a_model_without_the_history_mixin_has_no_buttons(superuser_client):
    with audit_context("test"):
        customer = CustomerFactory()
    entry = log_of(customer)[0]
    from django.contrib import admin

    from tests.testapp.admin import CustomerAdmin

    admin.site.unregister(Customer)
    admin.site.register(Customer)
    try:
        assert entry_actions(superuser_client, entry) == []
    finally:
        admin.site.unregister(Customer)
        admin.site.register(Customer, CustomerAdmin)
