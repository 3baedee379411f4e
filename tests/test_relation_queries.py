"""``obj.audit_logs`` reads in one query, warm or cold content type cache, and never writes."""

import pickle

import pytest
from django.contrib.contenttypes.models import ContentType
from django.db import connections
from django.db.models import Count
from django.test.utils import isolate_apps

from audit_log.fields import ContentTypeId, ReadOnlyRelationError
from audit_log.guard import log_maintenance
from tests import factories
from tests.testapp.models import AuditLogEntry, CharThing, Invoice, SpecialInvoice

pytestmark = pytest.mark.django_db

READS = {
    "slice": lambda logs: [entry.action for entry in logs.all()[:50]],
    "filter": lambda logs: [entry.action for entry in logs.filter(action="UPDATE")],
    "first": lambda logs: logs.first().action,
    "count": lambda logs: logs.count(),
    "exists": lambda logs: logs.exists(),
}
EXPECTED = {"slice": ["UPDATE", "INSERT"], "filter": ["UPDATE"], "first": "UPDATE", "count": 2, "exists": True}


@pytest.fixture
def cold_content_types():
    """An empty ContentType cache, as in a fresh process; emptied again afterwards (ids may differ per test)."""
    ContentType.objects.clear_cache()
    yield
    ContentType.objects.clear_cache()


def changed_invoice(**kwargs):
    invoice = factories.InvoiceFactory(**kwargs)
    invoice.notes = "changed"
    invoice.save()
    return invoice


@pytest.mark.parametrize("read", READS)
def test_audit_logs_reads_in_one_query_with_a_cold_content_type_cache(
    read, cold_content_types, django_assert_num_queries
):
    invoice = changed_invoice()
    factories.InvoiceFactory()  # another object's entries, same content type
    ContentType.objects.clear_cache()
    with django_assert_num_queries(1) as captured:
        result = READS[read](invoice.audit_logs)
    assert result == EXPECTED[read]
    assert "django_content_type" in captured.captured_queries[0]["sql"]  # the id comes from a subquery


@pytest.mark.parametrize("read", READS)
def test_audit_logs_uses_the_cached_content_type_id(read, cold_content_types, django_assert_num_queries):
    invoice = changed_invoice()
    ContentType.objects.get_for_model(Invoice)
    with django_assert_num_queries(1) as captured:
        result = READS[read](invoice.audit_logs)
    assert result == EXPECTED[read]
    assert "django_content_type" not in captured.captured_queries[0]["sql"]


def test_audit_logs_with_another_manager_is_lazy_and_read_only(cold_content_types, django_assert_num_queries):
    invoice = changed_invoice()
    ContentType.objects.clear_cache()
    logs = invoice.audit_logs(manager="objects")
    with django_assert_num_queries(1):
        assert logs.count() == 2
    with pytest.raises(ReadOnlyRelationError):
        logs.create(action="INSERT")


def test_audit_logs_looks_the_content_type_up_only_when_asked(cold_content_types, django_assert_num_queries):
    invoice = factories.InvoiceFactory()
    ContentType.objects.clear_cache()
    with django_assert_num_queries(0):
        logs = invoice.audit_logs
    with django_assert_num_queries(1):
        assert logs.content_type == ContentType.objects.get_for_model(Invoice)


def test_audit_logs_subquery_stands_beside_a_join_to_content_types(cold_content_types, django_assert_num_queries):
    invoice = changed_invoice()
    factories.CustomerFactory()
    ContentType.objects.clear_cache()
    with django_assert_num_queries(1):
        entries = list(invoice.audit_logs.select_related("content_type"))
    assert [(entry.action, entry.content_type.model) for entry in entries] == [
        ("UPDATE", "invoice"),
        ("INSERT", "invoice"),
    ]


def test_audit_logs_query_survives_pickling(cold_content_types):
    # Pickling a QuerySet evaluates it; its query is what Django documents pickling unevaluated.
    invoice = changed_invoice()
    restored = AuditLogEntry.objects.all()
    restored.query = pickle.loads(pickle.dumps(invoice.audit_logs.filter(action="UPDATE").query))
    assert [entry.action for entry in restored] == ["UPDATE"]


def test_audit_logs_of_a_model_without_a_content_type_is_empty(cold_content_types, django_assert_num_queries):
    invoice = factories.InvoiceFactory()
    with log_maintenance():
        AuditLogEntry.objects.all().delete()
    ContentType.objects.filter(app_label="testapp", model="invoice").delete()
    ContentType.objects.clear_cache()
    with django_assert_num_queries(1):
        assert list(invoice.audit_logs.all()) == []
    # Reading never writes: Django's manager would have created the content type.
    assert not ContentType.objects.filter(app_label="testapp", model="invoice").exists()


def test_audit_logs_of_a_multi_table_child_are_those_of_its_concrete_model(
    cold_content_types, django_assert_num_queries
):
    special = factories.SpecialInvoiceFactory()
    special.priority = 2
    special.save()
    parent = Invoice.objects.get(pk=special.pk)
    ContentType.objects.clear_cache()
    with django_assert_num_queries(1):
        child_entries = [(entry.table_name, entry.action) for entry in special.audit_logs.all()]
    with django_assert_num_queries(1):
        parent_entries = [(entry.table_name, entry.action) for entry in parent.audit_logs.all()]
    assert child_entries == [("testapp_specialinvoice", "UPDATE"), ("testapp_specialinvoice", "INSERT")]
    assert parent_entries == [("testapp_invoice", "INSERT")]
    assert special.audit_logs.first().changes == {"priority": [1, 2]}


@isolate_apps("tests.testapp")
def test_audit_logs_of_a_proxy_are_those_of_its_concrete_model(cold_content_types, django_assert_num_queries):
    class InvoiceProxy(Invoice):
        class Meta:
            proxy = True
            app_label = "testapp"

    invoice = changed_invoice()
    proxy = InvoiceProxy.objects.get(pk=invoice.pk)
    ContentType.objects.clear_cache()
    with django_assert_num_queries(1):
        assert [entry.action for entry in proxy.audit_logs.all()] == ["UPDATE", "INSERT"]
    assert list(InvoiceProxy.objects.filter(audit_logs__action="UPDATE")) == [proxy]


def test_filter_through_audit_logs_takes_one_query_with_a_cold_content_type_cache(
    cold_content_types, django_assert_num_queries
):
    changed = changed_invoice()
    factories.InvoiceFactory()
    ContentType.objects.clear_cache()
    with django_assert_num_queries(1):
        assert list(Invoice.objects.filter(audit_logs__action="UPDATE")) == [changed]
    with django_assert_num_queries(1):
        counts = dict(Invoice.objects.annotate(n=Count("audit_logs")).values_list("pk", "n"))
    assert sorted(counts.values()) == [1, 2]


def test_exclude_through_audit_logs_takes_one_query_with_a_cold_content_type_cache(
    cold_content_types, django_assert_num_queries
):
    # Character keys: Django compares the log's text object_id with integer keys
    # uncast in exclude()'s subquery, so an integer-keyed model cannot show this.
    unchanged, changed = factories.CharThingFactory(), factories.CharThingFactory()
    changed.name = "changed"
    changed.save()
    ContentType.objects.clear_cache()
    with django_assert_num_queries(1):
        assert list(CharThing.objects.exclude(audit_logs__action="UPDATE")) == [unchanged]


def test_prefetch_related_audit_logs_gives_each_object_its_entries(django_assert_num_queries):
    changed, created = changed_invoice(), factories.InvoiceFactory()
    ContentType.objects.get_for_model(Invoice)
    with django_assert_num_queries(2):
        invoices = {invoice.pk: invoice for invoice in Invoice.objects.prefetch_related("audit_logs")}
    with django_assert_num_queries(0):
        assert [entry.action for entry in invoices[changed.pk].audit_logs.all()] == ["UPDATE", "INSERT"]
        assert [entry.action for entry in invoices[created.pk].audit_logs.all()] == ["INSERT"]


@pytest.mark.django_db(databases=["default", "other"])
def test_audit_logs_reads_the_database_the_object_came_from(cold_content_types, django_assert_num_queries):
    # Give the invoice content type another id on "other" than on "default",
    # and the same primary key on both, so only the right database and the
    # right id find the entries.
    ContentType.objects.using("other").filter(app_label="testapp", model="invoice").delete()
    on_other = Invoice.objects.using("other").create(pk=987_654, number="O")
    changed_invoice(pk=987_654)
    default_id = ContentType.objects.get_for_model(Invoice).pk
    other_id = ContentType.objects.db_manager("other").get_for_model(Invoice).pk
    assert default_id != other_id
    for cache in ("cold", "warm"):
        if cache == "cold":
            ContentType.objects.clear_cache()
        with django_assert_num_queries(0), django_assert_num_queries(1, connection=connections["other"]):
            assert [entry.action for entry in on_other.audit_logs.all()] == ["INSERT"], cache
        with django_assert_num_queries(0), django_assert_num_queries(1, connection=connections["other"]):
            assert list(Invoice.objects.using("other").filter(audit_logs__action="INSERT")) == [on_other], cache
        ContentType.objects.get_for_model(Invoice)  # warm only "default"'s cache: "other" must not use it
        ContentType.objects.db_manager("other").get_for_model(Invoice)


@pytest.mark.parametrize(
    ("method", "args"),
    [
        ("add", "entry"),
        ("remove", "entry"),
        ("clear", None),
        ("set", "entries"),
        ("create", "fields"),
        ("get_or_create", "fields"),
        ("update_or_create", "fields"),
        ("acreate", "fields"),
        ("aclear", None),
    ],
)
def test_audit_logs_refuses_writes_through_the_relation(method, args):
    invoice, other = factories.InvoiceFactory(), factories.InvoiceFactory()
    entry = other.audit_logs.get()
    arguments = {
        None: ((), {}),
        "entry": ((entry,), {}),
        "entries": (([entry],), {}),
        "fields": ((), {"action": "INSERT", "table_name": "forged", "changes": {}, "transaction_id": 1}),
    }[args]
    before = list(AuditLogEntry.objects.values_list("pk", "content_type_id", "object_id").order_by("pk"))
    with pytest.raises(ReadOnlyRelationError, match=rf"Invoice\.audit_logs is read-only.*{method}\(\)"):
        getattr(invoice.audit_logs, method)(*arguments[0], **arguments[1])
    assert list(AuditLogEntry.objects.values_list("pk", "content_type_id", "object_id").order_by("pk")) == before


def test_audit_logs_write_methods_are_never_called_by_templates():
    from django.template import Context, Template

    invoice = factories.InvoiceFactory()
    assert Template("{{ logs.clear }}{{ logs.create }}").render(Context({"logs": invoice.audit_logs})) == ""
    assert invoice.audit_logs.count() == 1


def test_content_type_id_names_the_concrete_model():
    assert repr(ContentTypeId.for_model(SpecialInvoice)) == "ContentTypeId('testapp', 'specialinvoice')"
    assert ContentTypeId.for_model(SpecialInvoice(), for_concrete_model=False).model_name == "specialinvoice"
    assert ContentTypeId.for_model(Invoice) == ContentTypeId("testapp", "invoice")
