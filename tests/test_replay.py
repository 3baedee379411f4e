"""Property: replaying the log in order rebuilds exactly what the table holds."""

import json
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.db.models import F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audit_log.context import audit_context
from tests.testapp.models import AuditLogEntry, Invoice

pytestmark = pytest.mark.django_db

texts = st.text(alphabet=st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=20)
statuses = st.sampled_from([choice for choice, _ in Invoice.Status.choices])
amounts = st.decimals(min_value=Decimal("-9999.99"), max_value=Decimal("9999.99"), places=2, allow_nan=False)
rows = st.fixed_dictionaries({"number": texts, "status": statuses, "amount": amounts, "notes": texts})
picks = st.integers(min_value=0, max_value=10_000)

operations = st.one_of(
    st.tuples(st.just("create"), rows),
    st.tuples(st.just("bulk_create"), st.lists(rows, max_size=5)),
    st.tuples(st.just("save"), picks, rows),
    st.tuples(st.just("save_unchanged"), picks),
    st.tuples(st.just("bulk_update"), st.lists(st.tuples(picks, amounts), max_size=4)),
    st.tuples(st.just("update"), statuses, texts),
    st.tuples(st.just("update_expression"), statuses),
    st.tuples(st.just("delete"), picks),
    st.tuples(st.just("queryset_delete"), statuses),
    st.tuples(st.just("raw_update"), statuses, texts),
    st.tuples(st.just("raw_insert"), rows),
    st.tuples(st.just("raw_key_change"), picks),
)


def pick(index):
    invoices = list(Invoice.objects.order_by("pk"))
    return invoices[index % len(invoices)] if invoices else None


def apply(operation):
    kind, *args = operation
    if kind == "create":
        Invoice.objects.create(**args[0])
    elif kind == "bulk_create":
        Invoice.objects.bulk_create([Invoice(**row) for row in args[0]])
    elif kind == "save" and (invoice := pick(args[0])):
        for name, value in args[1].items():
            setattr(invoice, name, value)
        invoice.save()
    elif kind == "save_unchanged" and (invoice := pick(args[0])):
        invoice.save()
    elif kind == "bulk_update":
        changed = {}
        for index, amount in args[0]:
            if invoice := pick(index):
                invoice.amount = amount
                changed[invoice.pk] = invoice
        Invoice.objects.bulk_update(list(changed.values()), ["amount"])
    elif kind == "update":
        Invoice.objects.filter(status=args[0]).update(notes=args[1])
    elif kind == "update_expression":
        Invoice.objects.filter(status=args[0]).update(amount=F("amount") + 1)
    elif kind == "delete" and (invoice := pick(args[0])):
        invoice.delete()
    elif kind == "queryset_delete":
        Invoice.objects.filter(status=args[0]).delete()
    elif kind in {"raw_update", "raw_insert", "raw_key_change"}:
        with connection.cursor() as cursor:
            if kind == "raw_update":
                cursor.execute("UPDATE testapp_invoice SET notes = %s WHERE status = %s", [args[1], args[0]])
            elif kind == "raw_insert":
                row = args[0]
                cursor.execute(
                    "INSERT INTO testapp_invoice (number, status, amount, notes) VALUES (%s, %s, %s, %s)",
                    [row["number"], row["status"], row["amount"], row["notes"]],
                )
            elif invoice := pick(args[0]):
                cursor.execute("UPDATE testapp_invoice SET id = -id WHERE id = %s", [invoice.pk])


def replay(entries):
    """Rebuild {object_id: row} from log entries, oldest first."""
    table = {}
    for entry in entries:
        if entry.action == "INSERT":
            table[entry.object_id] = dict(entry.changes)
        elif entry.action == "DELETE":
            del table[entry.object_id]
        else:
            old_id = str(entry.changes["id"][0]) if "id" in entry.changes else entry.object_id
            row = table.pop(old_id)
            row.update({column: new for column, (_old, new) in entry.changes.items()})
            table[entry.object_id] = row
    return table


def actual():
    with connection.cursor() as cursor:
        cursor.execute("SELECT id::text, to_jsonb(t) FROM testapp_invoice AS t")
        rows = cursor.fetchall()
    # Decode like the log does (exact decimals), whatever the driver returned.
    return {pk: json.loads(row if isinstance(row, str) else json.dumps(row), parse_float=Decimal) for pk, row in rows}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(operations, min_size=1, max_size=25))
def test_replaying_the_log_rebuilds_the_table(user, steps):
    with transaction.atomic():  # each example rolls back to an empty table and log
        start = AuditLogEntry.objects.order_by("-id").values_list("id", flat=True).first() or 0
        with audit_context("property", performed_by=user):
            for step in steps:
                apply(step)
        entries = AuditLogEntry.objects.filter(id__gt=start).order_by("id")
        assert replay(entries) == actual()
        transaction.set_rollback(True)
