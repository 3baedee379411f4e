"""``obj.audit_logs`` for every primary-key type, and entries that outlive what they point at."""

import pytest
from django.contrib.contenttypes.models import ContentType
from django.core.management import call_command

from audit_log.context import audit_context
from tests import factories
from tests.testapp.models import AuditLogEntry, BigThing, CharThing, Invoice, SmallThing, UUIDThing

pytestmark = pytest.mark.django_db

PK_FACTORIES = [
    factories.SmallThingFactory,  # integer
    factories.BigThingFactory,  # bigint
    factories.UUIDThingFactory,  # uuid
    factories.CharThingFactory,  # varchar
]


@pytest.mark.parametrize("factory", PK_FACTORIES)
def test_audit_logs_relation_works_for_every_primary_key_type(factory):
    obj = factory()
    obj.name = "renamed"
    obj.save()
    other = factory()
    assert [entry.action for entry in obj.audit_logs.order_by("id")] == ["INSERT", "UPDATE"]
    assert obj.audit_logs.first().object_id == str(obj.pk)
    assert obj.audit_logs.first().log_object == obj
    assert [entry.action for entry in other.audit_logs.all()] == ["INSERT"]


@pytest.mark.parametrize("factory", PK_FACTORIES)
def test_filter_through_audit_logs_works_for_every_primary_key_type(factory):
    # All key types share one log table, so a join must never compare across types.
    for each in PK_FACTORIES:
        each.create_batch(2)
    changed, _unchanged = factory(), factory()
    changed.name = "changed"
    changed.save()
    model = factory._meta.model
    assert list(model.objects.filter(audit_logs__action="UPDATE")) == [changed]
    assert model.objects.filter(audit_logs__action="INSERT").count() == model.objects.count()


def test_queryset_helpers_find_entries(user):
    with audit_context("test", performed_by=user):
        invoice = factories.InvoiceFactory()
        invoice.notes = "changed"
        invoice.save()
        factories.CustomerFactory()
    assert AuditLogEntry.objects.for_object(invoice).count() == 2
    assert AuditLogEntry.objects.for_model(Invoice).count() == 2
    assert AuditLogEntry.objects.changed("notes").filter(action="UPDATE").count() == 1


def test_deleting_the_object_keeps_its_entries():
    thing = factories.UUIDThingFactory()
    pk = thing.pk
    thing.delete()
    entries = AuditLogEntry.objects.filter(object_id=str(pk)).order_by("id")
    assert [entry.action for entry in entries] == ["INSERT", "DELETE"]
    assert entries[1].log_object is None


def test_deleting_the_user_keeps_the_id_and_name_of_who_did_it(user):
    with audit_context("test", performed_by=user):
        factories.InvoiceFactory()
    user_id = user.pk
    user.delete()
    entry = AuditLogEntry.objects.get()
    assert entry.performed_by_id == user_id
    assert entry.performed_by_label == "alice"


def test_deleting_a_content_type_keeps_the_entries():
    factories.CharThingFactory()
    ContentType.objects.get_for_model(CharThing).delete()
    entry = AuditLogEntry.objects.get()
    assert entry.table_name == "testapp_charthing"
    assert entry.content_type_id is not None  # the id stays; the row it named is gone


def test_remove_stale_contenttypes_keeps_the_entries():
    factories.BigThingFactory()
    ContentType.objects.create(app_label="testapp", model="gone")
    call_command("remove_stale_contenttypes", interactive=False, include_stale_apps=True, verbosity=0)
    assert AuditLogEntry.objects.filter(table_name="testapp_bigthing").count() == 1


def test_missing_content_type_is_created_by_the_trigger():
    ContentType.objects.filter(app_label="testapp", model="smallthing").delete()
    ContentType.objects.clear_cache()
    thing = factories.SmallThingFactory()
    content_type = ContentType.objects.get(app_label="testapp", model="smallthing")
    assert thing.audit_logs.get().content_type == content_type


def test_multi_table_children_log_their_own_table(user):
    from tests.testapp.models import SpecialInvoice

    with audit_context("test", performed_by=user):
        special = SpecialInvoice.objects.create(number="S-1", priority=1)
        special.priority = 2
        special.number = "S-2"
        special.save()
    tables = sorted((entry.table_name, entry.action) for entry in AuditLogEntry.objects.all())
    assert tables == [
        ("testapp_invoice", "INSERT"),
        ("testapp_invoice", "UPDATE"),
        ("testapp_specialinvoice", "INSERT"),
        ("testapp_specialinvoice", "UPDATE"),
    ]
    assert special.audit_logs.get(action="UPDATE").changes == {"priority": [1, 2]}


def test_models_exist_for_every_key_type():
    assert {BigThing._meta.pk.get_internal_type(), SmallThing._meta.pk.get_internal_type()} == {
        "BigAutoField",
        "AutoField",
    }
    assert UUIDThing._meta.pk.get_internal_type() == "UUIDField"
    assert CharThing._meta.pk.get_internal_type() == "CharField"
