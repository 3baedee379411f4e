"""``Model.objects.audited(...)``: objects with a matching log entry, each once, in one query on the index."""

import datetime
import re

import pytest
from django.contrib.contenttypes.models import ContentType
from django.db import connection, transaction
from django.db.models import Q, Subquery
from django.utils import timezone

from audit_log.context import audit_context
from audit_log.guard import log_maintenance
from audit_log.models import AuditLoggedQuerySet
from tests import factories
from tests.plans import index_pattern
from tests.testapp.models import (
    AuditLogEntry,
    BigThing,
    CharThing,
    Invoice,
    SmallThing,
    SpecialInvoice,
    UUIDThing,
)

pytestmark = pytest.mark.django_db


def change(obj, times=1, **fields):
    """Save ``obj`` ``times`` times with a new name/notes each time (one UPDATE entry each)."""
    attribute = "notes" if isinstance(obj, Invoice) else "name"
    for number in range(times):
        setattr(obj, attribute, f"changed {number}")
        for name, value in fields.items():
            setattr(obj, name, value)
        obj.save()


def test_audited_returns_each_object_once():
    changed, untouched = factories.InvoiceFactory(), factories.InvoiceFactory()
    change(changed, times=3)
    # The join the README used to show: one row per matching entry.
    assert list(Invoice.objects.filter(audit_logs__action="UPDATE")) == [changed] * 3
    assert list(Invoice.objects.audited(action="UPDATE")) == [changed]
    assert set(Invoice.objects.audited()) == {changed, untouched}  # both have their INSERT


def test_audited_is_one_query_also_with_a_cold_content_type_cache(django_assert_num_queries):
    change(factories.InvoiceFactory())
    ContentType.objects.clear_cache()
    try:
        with django_assert_num_queries(1):
            assert Invoice.objects.audited(action="UPDATE").count() == 1
    finally:
        ContentType.objects.clear_cache()


def test_audited_filters_by_user_time_and_q_objects(user, other_user):
    with audit_context("test", performed_by=user):
        by_alice = factories.InvoiceFactory()
        change(by_alice)
    with audit_context("test", performed_by=other_user):
        by_bob = factories.InvoiceFactory()
        change(by_bob, status="paid")
    a_month_ago = timezone.now() - datetime.timedelta(days=30)
    with log_maintenance():
        AuditLogEntry.objects.filter(object_id=str(by_alice.pk), action="UPDATE").update(at=a_month_ago)

    assert list(Invoice.objects.audited(action="UPDATE", performed_by=user)) == [by_alice]
    assert list(Invoice.objects.audited(action="UPDATE", at__gte=a_month_ago + datetime.timedelta(days=1))) == [by_bob]
    assert list(Invoice.objects.audited(Q(changes__has_key="status"), action="UPDATE")) == [by_bob]
    either = Q(changes__has_key="status") | Q(performed_by=user)
    assert set(Invoice.objects.audited(either, action="UPDATE")) == {by_alice, by_bob}


@pytest.mark.parametrize(
    ("factory", "model"),
    [
        (factories.UUIDThingFactory, UUIDThing),
        (factories.BigThingFactory, BigThing),
        (factories.SmallThingFactory, SmallThing),
        (factories.CharThingFactory, CharThing),
    ],
    ids=["uuid", "bigint", "int", "char"],
)
def test_audited_matches_every_key_type(factory, model):
    changed, untouched = factory(), factory()
    change(changed, times=2)
    assert untouched.pk != changed.pk
    assert list(model.objects.audited(action="UPDATE")) == [changed]


def test_audited_keeps_other_models_entries_with_the_same_key_apart():
    invoice = factories.InvoiceFactory()
    thing = factories.SmallThingFactory()
    change(thing)
    assert list(SmallThing.objects.audited(action="UPDATE")) == [thing]
    assert list(Invoice.objects.filter(pk=invoice.pk).audited(action="UPDATE")) == []


def test_audited_finds_a_child_changed_in_its_parent_table():
    special = factories.SpecialInvoiceFactory()
    other = factories.SpecialInvoiceFactory()
    special.number = "CHANGED"
    special.save(update_fields=["number"])  # a row of the parent table (Invoice's content type)
    other.priority = 9
    other.save(update_fields=["priority"])  # a row of the child table
    assert set(SpecialInvoice.objects.audited(action="UPDATE")) == {special, other}
    assert set(SpecialInvoice.objects.audited(action="UPDATE", changes__has_key="number")) == {special}


def test_audit_log_entries_annotates_the_newest_entry():
    invoice = factories.InvoiceFactory()
    change(invoice, times=2)
    newest = AuditLogEntry.objects.filter(object_id=str(invoice.pk)).order_by("-id").first()
    annotated = Invoice.objects.annotate(
        last_change=Subquery(Invoice.objects.audit_log_entries().order_by("-id").values("at")[:1])
    ).get()
    assert annotated.last_change == newest.at


def test_audited_is_kept_by_a_queryset_of_your_own():
    class InvoiceQuerySet(AuditLoggedQuerySet):
        def unpaid(self):
            return self.exclude(status="paid")

    paid, unpaid = factories.InvoiceFactory(status="paid"), factories.InvoiceFactory()
    change(paid)
    change(unpaid)
    manager = InvoiceQuerySet.as_manager()
    manager.model = Invoice
    assert list(manager.unpaid().audited(action="UPDATE")) == [unpaid]


@pytest.mark.parametrize(
    "factory",
    [factories.InvoiceFactory, factories.UUIDThingFactory, factories.CharThingFactory],
    ids=["int", "uuid", "char"],
)
def test_audited_probes_the_per_object_index(factory):
    model = factory._meta.model
    change(factory())
    index = AuditLogEntry._meta.indexes[0]
    assert index.fields == ["content_type", "object_id", "id"]
    # On a few rows any plan is cheap; with the alternatives priced out, the plan shows whether each
    # object's probe can be an index condition on (content_type, object_id): a collation or type
    # mismatch between the log's "C" text and the cast key would leave only a filter.
    with transaction.atomic(), connection.cursor() as cursor:
        for setting in ("seqscan", "bitmapscan", "hashjoin", "mergejoin", "material", "hashagg", "sort"):
            cursor.execute(f"SET LOCAL enable_{setting} = off")
        plan = model.objects.audited(action="UPDATE").order_by("-pk")[:10].explain()
    # The subquery's table alias: u0 (Django 5.2) or "U0" (Django 6).
    probe = re.search(rf"Index Scan using {index_pattern(index.name)} on \S+ \S+  .*\n\s*Index Cond: (.*)", plan)
    assert probe is not None, plan
    assert "object_id = " in probe[1], plan
