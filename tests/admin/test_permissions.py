"""Who sees what in the admin: entries of models a user may not view stay out of every log page."""

import datetime

import pytest
from django.contrib import admin
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.contrib.messages import get_messages
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from audit_log.context import audit_context
from audit_log_admin.permissions import compute_visibility, log_visibility
from tests.admin.factories import LogEntryFactory
from tests.factories import BigThingFactory, SecretFactory, SpecialInvoiceFactory, UserFactory
from tests.testapp.models import AuditLogEntry, Invoice, Secret, SmallThing

SECRET = "testapp_secret"


def results(response):
    assert response.status_code == 200, response.get("Location")
    return [entry.pk for entry in response.context["cl"].result_list]


def ids(**filters):
    return list(AuditLogEntry.objects.filter(**filters).values_list("pk", flat=True))


def visible_ids():
    return list(AuditLogEntry.objects.exclude(table_name=SECRET).values_list("pk", flat=True))


@pytest.fixture
def secret_ct(db):
    return ContentType.objects.get_for_model(Secret)


@pytest.fixture
def auditor(db, secret_ct):
    """A staff user who may view the log and every model but ``Secret``."""
    user = UserFactory(username="auditor", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__startswith="view_").exclude(content_type=secret_ct))
    return user


@pytest.fixture
def auditor_client(auditor):
    client = Client()
    client.force_login(auditor)
    return client


@pytest.fixture
def secret(user, invoice):
    """A secret created and changed in one context, with a change of ``invoice`` in between: three entries."""
    with audit_context("test", performed_by=user, context={"task": "secret"}):
        secret = SecretFactory(codeword="swordfish")
        invoice.notes = "about the secret"
        invoice.save(update_fields=["notes"])
        secret.codeword = "marlin"
        secret.save()
    return secret


@pytest.fixture
def unknown_entries(db):
    """Entries without a content type, with a deleted one, and with one whose model is no longer installed."""
    return [
        LogEntryFactory(content_type=None, table_name="orphan_tbl"),
        LogEntryFactory(content_type_id=987654, table_name="lost_tbl"),
        LogEntryFactory(content_type=ContentType.objects.create(app_label="gone", model="thing"), table_name="gone"),
    ]


# --- the changelist --------------------------------------------------------------------------


def test_changelist_leaves_out_entries_of_models_the_user_may_not_view(
    auditor_client, superuser_client, secret, log_url
):
    hidden = set(ids(table_name=SECRET))
    assert len(hidden) == 2
    assert results(superuser_client.get(log_url())) == ids()
    assert results(auditor_client.get(log_url())) == visible_ids()
    for params in ({"object_id": secret.pk}, {"q": secret.pk}, {"action": "INSERT"}, {"changed": "codeword"}):
        assert hidden & set(results(superuser_client.get(log_url(**params)))), params
        assert not hidden & set(results(auditor_client.get(log_url(**params)))), params


def test_changelist_transaction_and_context_lists_leave_out_hidden_entries(
    auditor_client, superuser_client, secret, log_url
):
    entry = AuditLogEntry.objects.filter(table_name=SECRET).first()
    for params in ({"transaction": entry.transaction_id}, {"context_id": entry.context_id}):
        assert entry.pk in results(superuser_client.get(log_url(**params)))
        shown = results(auditor_client.get(log_url(**params)))
        assert shown  # the invoice's change in the same transaction and context
        assert entry.pk not in shown


def test_changelist_count_leaves_out_hidden_entries(auditor_client, secret, log_url, settings):
    visible = len(visible_ids())
    response = auditor_client.get(log_url())
    assert response.context["cl"].result_count == visible
    assert f"{visible} audit log entries" in response.content.decode()
    # Above the limit, no "about N": the table's estimate counts the hidden entries too.
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {connection.ops.quote_name(AuditLogEntry._meta.db_table)}")
    settings.AUDIT_LOG_ADMIN_EXACT_COUNT_LIMIT = 2
    response = auditor_client.get(log_url())
    assert not response.context["cl"].paginator.count_is_estimate
    assert "more than 2 audit log entries" in response.content.decode()


def test_changelist_date_hierarchy_ignores_hidden_entries(auditor_client, superuser_client, secret_ct, log_url):
    LogEntryFactory(
        at=datetime.datetime(2020, 5, 1, 12, tzinfo=timezone.get_current_timezone()), content_type=secret_ct
    )
    LogEntryFactory()
    assert 'href="?at__year=2020"' in superuser_client.get(log_url()).content.decode()
    assert 'href="?at__year=2020"' not in auditor_client.get(log_url()).content.decode()


def test_changelist_of_a_user_who_may_view_most_models_lists_the_visible_ones(
    auditor_client, secret, secret_ct, log_url, django_assert_num_queries
):
    auditor_client.get(log_url())
    # session, user, the user's and its groups' permissions, count, page, date hierarchy, invoices, customers:
    # which entries the user may see costs no query; the newest seal
    with django_assert_num_queries(10) as queries:
        response = auditor_client.get(log_url())
    assert results(response) == visible_ids()
    page = [q["sql"] for q in queries.captured_queries if 'ORDER BY "testapp_auditlogentry"."id" DESC' in q["sql"]]
    assert len(page) == 1
    assert '"testapp_auditlogentry"."content_type_id" IN (' in page[0]
    assert f" {secret_ct.pk}," not in page[0].split("IN (", 1)[1].split(")")[0] + ","


# --- filters --------------------------------------------------------------------------------------


def test_model_filter_offers_only_models_the_user_may_view(
    auditor_client, superuser_client, secret, secret_ct, invoice_ct, log_url
):
    def offered(client):
        form = client.get(log_url()).context["cl"].filter_specs[0].filterset.form
        return [value for value, _ in form.fields["model"].choices]

    assert str(secret_ct.pk) in offered(superuser_client)
    assert str(invoice_ct.pk) in offered(auditor_client)
    assert str(secret_ct.pk) not in offered(auditor_client)
    assert "Testapp | Secret" not in auditor_client.get(log_url()).content.decode()
    response = auditor_client.get(log_url(model=secret_ct.pk))  # refused like a model that does not exist
    assert results(response) == []
    assert "Select a valid choice." in response.content.decode()


def test_changed_field_filter_does_not_resolve_field_names_of_hidden_models(auditor_client, superuser_client, log_url):
    # An invoice entry with a column named like Secret.codeword's ("cw"): found by that field name only
    # by those who may know the field.
    entry = LogEntryFactory(changes={"cw": ["a", "b"]})
    assert results(superuser_client.get(log_url(changed="codeword"))) == [entry.pk]
    assert results(auditor_client.get(log_url(changed="codeword"))) == []
    assert results(auditor_client.get(log_url(changed="cw"))) == [entry.pk]


# --- the entry page -------------------------------------------------------------------------------


def test_entry_page_of_a_hidden_entry_answers_like_a_missing_one(auditor, superuser_client, secret, entry_url):
    entry = AuditLogEntry.objects.filter(table_name=SECRET).first()
    assert superuser_client.get(entry_url(entry)).status_code == 200

    def answer(view, pk):
        client = Client()  # a new session each time: no message left over from the last answer
        client.force_login(auditor)
        response = client.get(reverse(f"admin:testapp_auditlogentry_{view}", args=[pk]))
        quoted = f"\N{LEFT DOUBLE QUOTATION MARK}{pk}\N{RIGHT DOUBLE QUOTATION MARK}"
        messages = [str(message).replace(quoted, "N") for message in get_messages(response.wsgi_request)]
        return response.status_code, response.get("Location"), messages

    for view in ("change", "history"):
        hidden = answer(view, entry.pk)
        assert hidden == answer(view, 987654)
        assert hidden[0] == 302
        assert "doesn\N{RIGHT SINGLE QUOTATION MARK}t exist" in hidden[2][0]


def test_entry_page_lists_only_visible_entries_of_its_transaction(auditor_client, superuser_client, secret, entry_url):
    entry = AuditLogEntry.objects.filter(table_name="testapp_invoice").first()

    def listed(client):
        return [label for _, _, label in client.get(entry_url(entry)).context["audit_log"].same_transaction]

    assert f"Secret {secret.pk}" in listed(superuser_client)
    assert listed(auditor_client)
    assert not [label for label in listed(auditor_client) if label.startswith("Secret")]


# --- entries whose model is gone --------------------------------------------------------------------


def test_changelist_shows_entries_of_unknown_models_to_superusers_only(
    auditor_client, superuser_client, unknown_entries, log_url, entry_url
):
    unknown = {entry.pk for entry in unknown_entries}
    assert unknown <= set(results(superuser_client.get(log_url())))
    assert not unknown & set(results(auditor_client.get(log_url())))
    for entry in unknown_entries:
        assert superuser_client.get(entry_url(entry)).status_code == 200
        assert auditor_client.get(entry_url(entry)).status_code == 302


def test_changelist_hides_unknown_content_types_between_known_ones(auditor_client, invoice, log_url):
    stale = ContentType.objects.create(app_label="gone", model="thing")
    # SmallThing's content type is deleted and made again: the stale id now lies between known ones.
    ContentType.objects.filter(app_label="testapp", model="smallthing").delete()
    ContentType.objects.clear_cache()
    try:
        assert ContentType.objects.get_for_model(SmallThing).pk > stale.pk
        entry = LogEntryFactory(content_type=stale)
        shown = results(auditor_client.get(log_url()))
        assert shown
        assert entry.pk not in shown
    finally:
        ContentType.objects.clear_cache()  # the test's content types are rolled back


def test_show_unknown_models_setting_shows_them_to_staff(auditor_client, secret, unknown_entries, log_url, settings):
    settings.AUDIT_LOG_ADMIN_SHOW_UNKNOWN_MODELS = True
    shown = set(results(auditor_client.get(log_url())))
    assert {entry.pk for entry in unknown_entries} <= shown
    assert not set(ids(table_name=SECRET)) & shown


# --- who decides ----------------------------------------------------------------------------------


def test_log_visibility_follows_a_registered_admin_that_refuses_the_model(
    auditor_client, invoice, log_url, monkeypatch
):
    monkeypatch.setattr(admin.site.get_model_admin(Invoice), "has_view_permission", lambda request, obj=None: False)
    assert results(auditor_client.get(log_url())) == ids(table_name="testapp_customer")


def test_log_visibility_of_a_model_without_an_admin_needs_its_view_or_change_permission(
    client, user, log_url, make_staff
):
    with audit_context("test", performed_by=user):
        BigThingFactory()
    entries = ids(table_name="testapp_bigthing")
    client.force_login(make_staff("auditor", "testapp.view_auditlogentry"))
    assert results(client.get(log_url())) == []
    for permission in ("testapp.view_bigthing", "testapp.change_bigthing"):
        client.force_login(make_staff(permission, "testapp.view_auditlogentry", permission))
        assert results(client.get(log_url())) == entries


def test_log_visibility_of_a_superuser_filters_nothing(rf, superuser):
    request = rf.get("/")
    request.user = superuser
    visibility = log_visibility(request, admin.site)
    assert visibility.everything
    assert log_visibility(request, admin.site) is visibility  # once per request
    assert " WHERE " not in str(visibility.apply(AuditLogEntry.objects.all()).query)


def test_log_visibility_of_a_user_who_may_view_few_models_lists_them(rf, make_staff, invoice_ct):
    request = rf.get("/")
    request.user = make_staff("few", "testapp.view_auditlogentry", "testapp.view_invoice")
    visibility = compute_visibility(request, admin.site)
    assert visibility.shown == {invoice_ct.pk, ContentType.objects.get_for_model(AuditLogEntry).pk}
    assert visibility.shows(invoice_ct.pk)
    assert not visibility.shows(None)
    with CaptureQueriesContext(connection) as queries:
        list(visibility.apply(AuditLogEntry.objects.all()))
    assert '"content_type_id" IN (' in queries.captured_queries[0]["sql"]


# --- the history tab -------------------------------------------------------------------------------


def test_history_view_links_only_entries_the_user_may_open(client, user, history_url, make_staff):
    with audit_context("test", performed_by=user):
        special = SpecialInvoiceFactory(number="SP-1")
    client.force_login(make_staff("special", "testapp.view_specialinvoice", "testapp.view_auditlogentry"))
    response = client.get(history_url(special))
    urls = {item.entry.table_name: item.url for item in response.context["entries"]}
    # The object's own parent table is in its history, but the log hides Invoice's entries from this user.
    assert urls["testapp_invoice"] == ""
    assert urls["testapp_specialinvoice"]
    assert response.context["log_url"]
    assert client.get(urls["testapp_specialinvoice"]).context["audit_log"].same_transaction == []
