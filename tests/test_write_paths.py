"""Every way of writing to an audited table is logged, in the same transaction."""

from decimal import Decimal

import pytest
from django.db import IntegrityError, connection, transaction

from audit_log.context import audit_context
from tests.factories import CustomerFactory, InvoiceFactory
from tests.testapp.models import AuditLogEntry, Invoice, NotAudited

pytestmark = pytest.mark.django_db


@pytest.fixture
def ctx(user):
    with audit_context("test", performed_by=user):
        yield


def test_save_logs_insert_with_the_new_row(ctx, entries):
    invoice = Invoice(number="A-1", amount=Decimal("12.50"))
    invoice.save()
    [entry] = entries()
    assert entry.action == "INSERT"
    assert entry.object_id == str(invoice.pk)
    assert entry.changes == {
        "id": invoice.pk,
        "number": "A-1",
        "status": "draft",
        "amount": 12.5,
        "customer_id": None,
        "notes": "",
    }
    assert entry.log_object == invoice
    assert entry.table_name == "testapp_invoice"


def test_save_logs_update_with_only_changed_columns(ctx, entries):
    invoice = InvoiceFactory(number="A-1", amount=Decimal("1.00"))
    invoice.status = Invoice.Status.SENT
    invoice.amount = Decimal("2.00")
    invoice.save()
    update = entries(action="UPDATE")
    assert [entry.changes for entry in update] == [{"status": ["draft", "sent"], "amount": [1.0, 2.0]}]


def test_update_that_changes_nothing_writes_no_entry(ctx, entries):
    invoice = InvoiceFactory()
    invoice.save()
    Invoice.objects.filter(pk=invoice.pk).update(number=invoice.number)
    assert [entry.action for entry in entries()] == ["INSERT"]


def test_create_logs_insert(ctx, entries):
    invoice = Invoice.objects.create(number="C-1")
    assert [(entry.action, entry.object_id) for entry in entries()] == [("INSERT", str(invoice.pk))]


def test_bulk_create_logs_every_row_in_one_statement(ctx, entries, django_assert_num_queries):
    NotAudited.objects.create(name="writes the context row first")
    with django_assert_num_queries(1):
        Invoice.objects.bulk_create([Invoice(number=f"B-{i}") for i in range(500)])
    logged = entries()
    assert len(logged) == 500
    assert sorted(entry.changes["number"] for entry in logged) == sorted(f"B-{i}" for i in range(500))
    assert len({entry.transaction_id for entry in logged}) == 1


def test_bulk_update_logs_each_changed_row(ctx, entries):
    invoices = InvoiceFactory.create_batch(5, amount=Decimal("1"))
    for invoice in invoices:
        invoice.amount = Decimal("3")
    invoices[0].amount = Decimal("1")  # unchanged: no entry
    Invoice.objects.bulk_update(invoices, ["amount"])
    updates = entries(action="UPDATE")
    assert sorted(entry.object_id for entry in updates) == sorted(str(invoice.pk) for invoice in invoices[1:])
    assert all(entry.changes == {"amount": [Decimal("1.00"), Decimal("3.00")]} for entry in updates)


def test_queryset_update_pairs_old_and_new_rows(ctx, entries):
    invoices = [InvoiceFactory(number=f"Q-{i}", amount=Decimal(i)) for i in range(50)]
    Invoice.objects.filter(number__startswith="Q-").update(amount=Decimal("100"))
    by_object = {entry.object_id: entry.changes for entry in entries(action="UPDATE")}
    assert by_object == {str(invoice.pk): {"amount": [float(invoice.amount), 100.0]} for invoice in invoices[:-1]} | {
        str(invoices[-1].pk): {"amount": [49.0, 100.0]}
    }


def test_update_of_primary_keys_is_logged_with_old_and_new_keys(ctx, entries):
    first, second = InvoiceFactory(), InvoiceFactory()
    with connection.cursor() as cursor:
        cursor.execute("UPDATE testapp_invoice SET id = id + 1000 WHERE id IN (%s, %s)", [first.pk, second.pk])
    updates = entries(action="UPDATE")
    assert sorted(entry.changes["id"] for entry in updates) == sorted(
        [[first.pk, first.pk + 1000], [second.pk, second.pk + 1000]]
    )
    assert sorted(entry.object_id for entry in updates) == sorted([str(first.pk + 1000), str(second.pk + 1000)])
    for entry in updates:
        assert entry.object_id == str(entry.changes["id"][1])


def test_queryset_delete_logs_the_old_rows(ctx, entries):
    invoices = InvoiceFactory.create_batch(3)
    Invoice.objects.all().delete()
    deletes = entries(action="DELETE")
    assert sorted(entry.object_id for entry in deletes) == sorted(str(invoice.pk) for invoice in invoices)
    assert {entry.changes["number"] for entry in deletes} == {invoice.number for invoice in invoices}


def test_instance_delete_logs_the_old_row_and_keeps_its_entries(ctx, entries):
    invoice = InvoiceFactory(number="D-1")
    pk = invoice.pk
    invoice.delete()
    logged = entries(object_id=str(pk))
    assert [entry.action for entry in logged] == ["INSERT", "DELETE"]
    assert logged[1].changes["number"] == "D-1"


def test_raw_sql_through_connection_cursor_is_logged(user, entries):
    with audit_context("raw", performed_by=user), connection.cursor() as cursor:
        cursor.execute("INSERT INTO testapp_invoice (number, status, amount, notes) VALUES ('R-1', 'draft', 1, '')")
        cursor.execute("UPDATE testapp_invoice SET notes = 'fixed' WHERE number = 'R-1'")
        cursor.execute("DELETE FROM testapp_invoice WHERE number = 'R-1'")
    logged = entries()
    assert [entry.action for entry in logged] == ["INSERT", "UPDATE", "DELETE"]
    assert logged[1].changes == {"notes": ["", "fixed"]}
    assert all(entry.context_type == "raw" and entry.performed_by_id == user.pk for entry in logged)


@pytest.mark.django_db(transaction=True)  # TRUNCATE refuses pending deferred foreign-key checks
def test_truncate_logs_every_removed_row_as_delete(ctx, entries):
    invoices = InvoiceFactory.create_batch(3)
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE testapp_invoice CASCADE")
    deletes = entries(action="DELETE")
    assert sorted(entry.object_id for entry in deletes) == sorted(str(invoice.pk) for invoice in invoices)


def test_writes_to_unaudited_tables_are_not_logged(ctx, entries):
    NotAudited.objects.create(name="x")
    assert entries() == []


def test_entries_of_one_transaction_share_its_id(user, entries):
    with audit_context("test", performed_by=user):
        with transaction.atomic():
            InvoiceFactory()
            CustomerFactory()
        txid = entries()[0].transaction_id
        with connection.cursor() as cursor:
            cursor.execute("SELECT txid_current()")
            assert cursor.fetchone()[0] == txid  # the test's own transaction
    assert {entry.transaction_id for entry in entries()} == {txid}


def test_rolled_back_savepoint_takes_its_entries_with_it(ctx, entries):
    kept = InvoiceFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        InvoiceFactory()
        Invoice.objects.create(number=None)
    assert [entry.object_id for entry in entries()] == [str(kept.pk)]


@pytest.mark.django_db(transaction=True)
def test_rolled_back_transaction_leaves_no_entry(user, entries):
    with audit_context("test", performed_by=user):
        with pytest.raises(RuntimeError), transaction.atomic():
            InvoiceFactory()
            raise RuntimeError("roll back")
        survivor = InvoiceFactory()
    assert [entry.object_id for entry in entries()] == [str(survivor.pk)]
    assert entries()[0].context_type == "test"


@pytest.mark.django_db(transaction=True)
def test_autocommit_writes_get_one_transaction_id_each(user, entries):
    with audit_context("test", performed_by=user):
        InvoiceFactory()
        InvoiceFactory()
    assert len({entry.transaction_id for entry in entries()}) == 2
    assert AuditLogEntry.objects.same_transaction_as(entries()[0]).count() == 1


def test_a_10000_row_update_is_logged_by_one_trigger_call(ctx, entries):
    Invoice.objects.bulk_create([Invoice(number=f"S-{i}", amount=Decimal(i)) for i in range(10_000)])
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL track_functions = 'pl'")
        Invoice.objects.filter(pk=Invoice.objects.order_by("pk").values("pk")[:1]).update(notes="one row first")
        Invoice.objects.update(amount=Decimal("1"), notes="all")
        cursor.execute("SELECT calls FROM pg_stat_xact_user_functions WHERE funcname = 'audit_log_fn_testapp_invoice'")
        assert cursor.fetchone()[0] == 2  # once per statement, not per row
    assert AuditLogEntry.objects.filter(action="UPDATE").count() == 10_001
