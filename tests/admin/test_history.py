import re

import pytest
from django.contrib import admin
from django.contrib.messages import get_messages
from django.core.management import call_command
from django.urls import reverse

from audit_log.context import audit_context
from audit_log.guard import log_maintenance
from audit_log_admin.admin import AuditLogHistoryMixin
from tests.factories import CharThingFactory, CustomerFactory, InvoiceFactory, UUIDThingFactory
from tests.testapp.models import AuditLogEntry, Invoice, NotAudited, SpecialInvoice


def entry_ids(response):
    return [int(match) for match in re.findall(r'id="audit-log-entry-(\d+)"', response.content.decode())]


def test_history_view_lists_the_audit_log_newest_first(superuser_client, invoice, history_url):
    response = superuser_client.get(history_url(invoice))
    assert response.status_code == 200
    assert response.templates[0].name == "audit_log_admin/object_history.html"
    expected = list(AuditLogEntry.objects.filter(object_id=str(invoice.pk), table_name="testapp_invoice"))
    assert entry_ids(response) == [entry.pk for entry in expected]  # model ordering is -id
    assert len(expected) == 3
    assert response.context["entry_count"] == 3


def test_history_view_shows_labels_old_and_new_values(superuser_client, invoice, history_url):
    response = superuser_client.get(history_url(invoice))
    newest = response.context["entries"][0]
    assert [(row.label, row.old.text, row.new.text) for row in newest.diff.rows] == [
        ("Status", "Sent", "Paid"),
        ("Amount", "10.50", "12.00"),
    ]
    created = response.context["entries"][-1]
    assert created.diff.shows_new
    assert not created.diff.shows_old
    assert {row.label: row.new.text for row in created.diff.rows}["Customer"] == "ACME"
    assert "Initial value" in response.content.decode()


def test_history_view_links_the_user_and_the_entry_page(superuser_client, invoice, history_url, user):
    response = superuser_client.get(history_url(invoice))
    content = response.content.decode()
    assert f'href="/admin/auth/user/{user.pk}/change/">alice</a>' in content
    newest = response.context["entries"][0]
    assert newest.url == reverse("admin:testapp_auditlogentry_change", args=[newest.entry.pk])
    assert f'href="{newest.url}"' in content


def test_history_view_shows_a_deleted_users_name_snapshot(superuser_client, invoice, history_url, user):
    user.delete()
    content = superuser_client.get(history_url(invoice)).content.decode()
    assert "alice (deleted user)" in content
    assert "/admin/auth/user/" not in content.split('id="change-history"')[1]


def test_history_view_shows_the_request_of_an_admin_change(superuser_client, invoice, history_url):
    change_url = reverse("admin:testapp_invoice_change", args=[invoice.pk])
    data = {"number": "INV-1", "status": "draft", "amount": "12.00", "customer": invoice.customer_id, "notes": "x"}
    assert superuser_client.post(change_url, data).status_code == 302
    response = superuser_client.get(history_url(invoice))
    newest = response.context["entries"][0]
    assert newest.entry.context_type == "http-request"
    assert newest.context == f"POST {change_url}"
    assert newest.who.text == "root"
    assert f"POST {change_url}" in response.content.decode()


def test_history_view_shows_the_command_and_its_arguments(superuser_client, invoice, history_url):
    call_command("bump_amounts", "5")
    newest = superuser_client.get(history_url(invoice)).context["entries"][0]
    assert newest.entry.context_type == "management-command"
    assert newest.context == "bump_amounts amount=5"
    assert newest.who.kind == "empty"


def test_history_view_escapes_every_value(superuser_client, user, history_url):
    with audit_context("test", performed_by=user, context={"note": "<script>alert('ctx')</script>"}):
        evil = CustomerFactory(name="<script>alert('name')</script>")
        invoice = InvoiceFactory(number="<b>bold</b>", customer=evil)
        invoice.notes = "<img src=x onerror=alert(1)> and a long enough text to get a word-level inline diff"
        invoice.save()
    content = superuser_client.get(history_url(invoice)).content.decode()
    assert "<script>alert(" not in content
    assert "&lt;script&gt;alert(&#x27;name&#x27;)&lt;/script&gt;" in content
    assert "<img src=x" not in content
    assert "&lt;img src=x onerror=alert(1)&gt;" in content
    assert "<b>bold</b>" not in content


@pytest.mark.parametrize("changes", [2, 120])
def test_history_view_runs_a_fixed_number_of_queries_per_page(
    superuser_client, invoice, user, history_url, django_assert_num_queries, changes
):
    customers = [CustomerFactory(), CustomerFactory()]
    with audit_context("test", performed_by=user):
        for number in range(changes):
            invoice.customer = customers[number % 2]
            invoice.save()
    url = history_url(invoice)
    superuser_client.get(url)  # warm the content-type cache
    # session, user, object, capped count, one page of entries (user joined), customers of the page
    with django_assert_num_queries(6):
        response = superuser_client.get(url)
    assert len(response.context["entries"]) == min(changes + 3, 50)


def test_history_view_older_page_adds_one_exists_query(
    superuser_client, invoice, change_invoice, history_url, django_assert_num_queries
):
    change_invoice(invoice, 120)
    first = superuser_client.get(history_url(invoice))
    older = first.context["page"].older_url
    # session, user, object, capped count, the page, "is there a newer page?" (no customer: notes changes only)
    with django_assert_num_queries(6):
        superuser_client.get(history_url(invoice, older))


def test_history_view_pages_by_id_without_offsets(superuser_client, invoice, change_invoice, history_url, monkeypatch):
    monkeypatch.setattr(admin.site.get_model_admin(Invoice), "audit_log_history_per_page", 2)
    change_invoice(invoice, 3)  # 6 entries
    all_ids = list(
        AuditLogEntry.objects.filter(object_id=str(invoice.pk), table_name="testapp_invoice").values_list(
            "id", flat=True
        )
    )
    newest = superuser_client.get(history_url(invoice))
    page = newest.context["page"]
    assert entry_ids(newest) == all_ids[:2]
    assert (page.newer_url, page.newest_url) == ("", "")
    assert page.older_url == f"?before={all_ids[1]}"
    assert page.oldest_url == "?after=0"

    older = superuser_client.get(history_url(invoice, page.older_url))
    assert entry_ids(older) == all_ids[2:4]
    assert older.context["page"].newer_url == f"?after={all_ids[2]}"
    assert older.context["page"].newest_url == "?"

    newer = superuser_client.get(history_url(invoice, older.context["page"].newer_url))
    assert entry_ids(newer) == all_ids[:2]

    oldest = superuser_client.get(history_url(invoice, "?after=0"))
    assert entry_ids(oldest) == all_ids[-2:]
    assert oldest.context["page"].older_url == ""
    assert oldest.context["page"].newer_url == f"?after={all_ids[-2]}"
    assert "Older" not in oldest.content.decode().split('class="paginator')[1]


@pytest.mark.parametrize("query", ["?before=abc", "?after=-5", "?before=", "?p=7"])
def test_history_view_ignores_invalid_cursors(superuser_client, invoice, history_url, query):
    response = superuser_client.get(history_url(invoice, query))
    assert response.status_code == 200
    assert len(response.context["entries"]) == 3


def test_history_view_keeps_other_query_parameters_in_page_links(
    superuser_client, invoice, change_invoice, history_url, monkeypatch
):
    monkeypatch.setattr(admin.site.get_model_admin(Invoice), "audit_log_history_per_page", 2)
    response = superuser_client.get(history_url(invoice, "?_changelist_filters=status%3Dpaid"))
    assert response.context["page"].older_url.startswith("?_changelist_filters=status%3Dpaid&before=")


def test_history_view_count_stops_at_the_limit(superuser_client, invoice, history_url, settings):
    settings.AUDIT_LOG_ADMIN_EXACT_COUNT_LIMIT = 2
    response = superuser_client.get(history_url(invoice))
    assert response.context["entry_count_capped"]
    assert "More than 2 entries" in response.content.decode()


def test_history_view_empty_history(superuser_client, history_url):
    invoice = Invoice.objects.create(number="QUIET")  # no context: still logged, as "unknown"
    with log_maintenance():
        AuditLogEntry.objects.all().delete()
    content = superuser_client.get(history_url(invoice)).content.decode()
    assert "This object has no audit log entries." in content
    assert "0 entries" in content


def test_history_view_is_shown_to_users_who_may_view_the_object(
    client, invoice, history_url, make_staff, django_assert_num_queries
):
    client.force_login(make_staff("viewer", "testapp.view_invoice"))
    url = history_url(invoice)
    assert client.get(url).status_code == 200
    # as for a superuser, plus the user's and its groups' permissions
    with django_assert_num_queries(8):
        response = client.get(url)
    assert response.status_code == 200
    assert all(item.url == "" for item in response.context["entries"])  # may not view log entries
    assert response.context["log_url"].startswith("/admin/testapp/auditlogentry/")


def test_history_view_links_entries_for_users_who_may_view_the_log(client, invoice, history_url, make_staff):
    client.force_login(make_staff("auditor", "testapp.view_invoice", "testapp.view_auditlogentry"))
    response = client.get(history_url(invoice))
    assert all(item.url for item in response.context["entries"])


def test_history_view_is_forbidden_without_view_permission(client, invoice, history_url, make_staff):
    client.force_login(make_staff("nobody", "testapp.view_customer"))
    assert client.get(history_url(invoice)).status_code == 403


def test_history_view_needs_a_staff_login(client, invoice, history_url):
    response = client.get(history_url(invoice))
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_history_view_of_a_missing_object_redirects_like_django(superuser_client, history_url, invoice):
    url = reverse("admin:testapp_invoice_history", args=[987654])
    response = superuser_client.get(url)
    assert response.status_code == 302
    assert response["Location"] == "/admin/"
    assert "doesn\N{RIGHT SINGLE QUOTATION MARK}t exist" in str(next(iter(get_messages(response.wsgi_request))))


def test_history_view_respects_the_admins_queryset(superuser_client, invoice, history_url, monkeypatch):
    model_admin = admin.site.get_model_admin(Invoice)
    monkeypatch.setattr(model_admin, "get_queryset", lambda request: Invoice.objects.exclude(pk=invoice.pk))
    assert superuser_client.get(history_url(invoice)).status_code == 302


def test_history_view_includes_the_multi_table_parents_entries(superuser_client, user, history_url):
    with audit_context("test", performed_by=user):
        special = SpecialInvoice.objects.create(number="SP-1", priority=1)
        special.priority = 2
        special.status = "sent"
        special.save()
    response = superuser_client.get(history_url(special))
    tables = [item.entry.table_name for item in response.context["entries"]]
    assert sorted(tables) == sorted(["testapp_invoice", "testapp_specialinvoice"] * 2)
    labels = {row.label for item in response.context["entries"] for row in item.diff.rows}
    assert {"Priority", "Status", "Number"} <= labels


@pytest.mark.parametrize("factory", [UUIDThingFactory, CharThingFactory])
def test_history_view_works_for_uuid_and_text_primary_keys(superuser_client, user, history_url, factory):
    with audit_context("test", performed_by=user):
        thing = factory(**({"code": "A/B_C"} if factory is CharThingFactory else {}))
        thing.name = "renamed"
        thing.save()
    response = superuser_client.get(history_url(thing))
    assert response.status_code == 200
    assert [item.entry.action for item in response.context["entries"]] == ["UPDATE", "INSERT"]


def test_history_view_of_an_admin_without_the_mixin_stays_djangos(superuser_client):
    thing = NotAudited.objects.create(name="plain")
    response = superuser_client.get(reverse("admin:testapp_notaudited_history", args=[thing.pk]))
    assert response.status_code == 200
    assert "audit_log_admin/object_history.html" not in [t.name for t in response.templates]


def test_history_view_links_to_the_objects_entries_in_the_log(superuser_client, invoice, invoice_ct, history_url):
    response = superuser_client.get(history_url(invoice))
    assert response.context["log_url"] == f"/admin/testapp/auditlogentry/?model={invoice_ct.pk}&object_id={invoice.pk}"


def test_history_view_on_an_unaudited_model_shows_an_empty_log_without_a_log_link(rf, superuser):
    class PlainAdmin(AuditLogHistoryMixin, admin.ModelAdmin):
        pass

    thing = NotAudited.objects.create(name="plain")
    request = rf.get("/")
    request.user = superuser
    response = PlainAdmin(NotAudited, admin.site).history_view(request, str(thing.pk))
    assert response.context_data["entries"] == []
    assert response.context_data["log_url"] == ""
    assert "This object has no audit log entries." in response.render().content.decode()


def test_history_view_uses_the_configured_formatter(superuser_client, invoice, history_url, settings):
    settings.AUDIT_LOG_ADMIN_FORMATTER = "tests.admin.test_diff.ShoutingFormatter"
    created = superuser_client.get(history_url(invoice)).context["entries"][-1]
    assert {row.label: row.new.text for row in created.diff.rows}["Notes"] == "FIRST"
