"""The temporary context table and ``audit_context``."""

import datetime
import threading
import uuid
from decimal import Decimal

import pytest
from asgiref.sync import async_to_sync
from django.core.management import call_command
from django.db import DatabaseError, connection, connections, transaction
from django.test.utils import CaptureQueriesContext, override_settings

from audit_log.context import audit_context, current_context, may_write, stack_for, write_context
from tests.factories import InvoiceFactory, UserFactory
from tests.testapp.models import AuditLogContext, AuditLogEntry, Invoice, NotAudited

pytestmark = pytest.mark.django_db


def context_rows(alias="default"):
    """Rows in the connection's temporary context table (None: no table)."""
    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT to_regclass('pg_temp.testapp_auditlogcontext')")
        if cursor.fetchone()[0] is None:
            return None
        cursor.execute("SELECT context_type FROM pg_temp.testapp_auditlogcontext")
        return [row[0] for row in cursor.fetchall()]


def test_context_fields_are_copied_onto_entries(user, entries):
    with audit_context("celery-task", performed_by=user, context={"task": "sync"}, tenant="acme") as ctx:
        InvoiceFactory()
    [entry] = entries()
    assert entry.context_type == "celery-task"
    assert entry.context_type_label == "Celery task"  # AUDIT_LOG_CONTEXT_TYPE_CHOICES
    assert entry.performed_by == user
    assert entry.performed_by_label == "alice"
    assert entry.context == {"task": "sync"}
    assert entry.tenant == "acme"
    assert entry.context_id == ctx.context_id


def test_context_type_is_free_text(entries):
    with audit_context("nightly-import"):
        InvoiceFactory()
    assert entries()[0].context_type == "nightly-import"
    assert entries()[0].context_type_label == "nightly-import"


def test_context_ids_are_time_ordered_uuids():
    first, second = AuditLogContext().context_id, AuditLogContext().context_id
    assert first.version == 7
    assert first < second or first.bytes[:6] == second.bytes[:6]


def test_writes_without_context_are_logged_as_unknown(entries):
    InvoiceFactory()
    [entry] = entries()
    assert entry.context_type == "unknown"
    assert entry.performed_by_id is None
    assert entry.performed_by_label == ""
    assert entry.context["db_user"] == connection.settings_dict["USER"]
    assert {"application_name", "client_addr", "backend_pid", "current_user"} <= set(entry.context)
    assert entry.context_id is None


def test_entering_a_context_costs_no_query_and_reads_do_not_write_it(user, django_assert_num_queries):
    with django_assert_num_queries(1), audit_context("test", performed_by=user):
        list(Invoice.objects.all())
    assert context_rows() is None or context_rows() == []


def test_context_row_is_written_once_before_the_first_write_and_cleared_on_exit(user):
    with CaptureQueriesContext(connection) as queries, audit_context("test", performed_by=user):
        InvoiceFactory()
        InvoiceFactory()
        assert context_rows() == ["test"]
    statements = [query["sql"] for query in queries.captured_queries if "context_rows" not in query["sql"]]
    assert sum("INSERT INTO pg_temp" in sql for sql in statements) == 1
    assert statements[-1] == 'DELETE FROM pg_temp."testapp_auditlogcontext"'
    assert context_rows() == []


def test_temporary_table_is_created_once_per_connection(user):
    def table_oid():
        with connection.cursor() as cursor:
            cursor.execute("SELECT to_regclass('pg_temp.testapp_auditlogcontext')::oid")
            return cursor.fetchone()[0]

    with audit_context("first", performed_by=user):
        InvoiceFactory()
    oid = table_oid()
    with audit_context("second", performed_by=user):
        InvoiceFactory()
    assert table_oid() == oid


def test_innermost_context_applies_and_leaving_it_restores_the_outer(user, other_user, entries):
    with audit_context("outer", performed_by=user):
        InvoiceFactory(number="1")
        with audit_context("inner", performed_by=other_user):
            InvoiceFactory(number="2")
        InvoiceFactory(number="3")
    assert [(e.changes["number"], e.context_type, e.performed_by_id) for e in entries()] == [
        ("1", "outer", user.pk),
        ("2", "inner", other_user.pk),
        ("3", "outer", user.pk),
    ]


def test_inner_context_without_writes_does_not_disturb_the_outer(user, other_user, entries):
    with audit_context("outer", performed_by=user):
        InvoiceFactory()
        with audit_context("inner", performed_by=other_user):
            list(Invoice.objects.all())
        InvoiceFactory()
    assert {entry.context_type for entry in entries()} == {"outer"}


def test_contexts_must_be_left_in_reverse_order(user):
    outer, inner = audit_context("outer"), audit_context("inner")
    outer.__enter__()
    inner.__enter__()
    with pytest.raises(RuntimeError, match="reverse order"):
        outer.__exit__(None, None, None)
    inner.__exit__(None, None, None)
    outer.__exit__(None, None, None)


def test_writes_after_the_context_are_unknown(user, entries):
    with audit_context("test", performed_by=user):
        InvoiceFactory()
    InvoiceFactory()
    assert [entry.context_type for entry in entries()] == ["test", "unknown"]


def test_context_survives_a_rolled_back_savepoint_that_wrote_it(user, entries):
    with audit_context("test", performed_by=user):
        with pytest.raises(RuntimeError), transaction.atomic():
            InvoiceFactory()  # writes the context row inside the savepoint
            raise RuntimeError
        InvoiceFactory(number="after")
    [entry] = entries()
    assert entry.changes["number"] == "after"
    assert entry.context_type == "test"


@pytest.mark.django_db(transaction=True)
def test_context_survives_a_rolled_back_transaction_that_wrote_it(user, entries):
    with audit_context("test", performed_by=user):
        with pytest.raises(RuntimeError), transaction.atomic():
            InvoiceFactory()
            raise RuntimeError
        InvoiceFactory(number="after")
    [entry] = entries()
    assert (entry.changes["number"], entry.context_type) == ("after", "test")
    assert context_rows() == []


@pytest.mark.django_db(transaction=True)
def test_context_left_inside_a_failed_transaction_does_not_raise(user, entries):
    with pytest.raises(DatabaseError), transaction.atomic(), audit_context("test", performed_by=user):
        InvoiceFactory()
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1/0")
    assert not context_rows()  # the table was created in the failed transaction, so it is gone
    InvoiceFactory()
    assert [entry.context_type for entry in entries()] == ["unknown"]


@pytest.mark.django_db(transaction=True)
def test_discard_all_inside_a_context_is_recovered_from(user, entries):
    with audit_context("test", performed_by=user):
        InvoiceFactory()
        with connection.cursor() as cursor:
            cursor.execute("DISCARD ALL")
        InvoiceFactory()
    assert [entry.context_type for entry in entries()] == ["test", "test"]


def test_context_works_as_a_decorator(user, entries):
    @audit_context("decorated", performed_by=user)
    def work(number):
        return InvoiceFactory(number=number)

    work("1")
    work("2")
    assert [entry.context_type for entry in entries()] == ["decorated", "decorated"]


def test_context_works_with_async_code(user, entries):
    async def work():
        async with audit_context("async-job", performed_by=user):
            await Invoice.objects.acreate(number="async")

    async_to_sync(work)()
    [entry] = entries()
    assert (entry.context_type, entry.performed_by_id) == ("async-job", user.pk)


def test_unknown_context_field_fails_when_entering():
    with pytest.raises(TypeError, match="nonexistent"), audit_context("test", nonexistent=1):
        pass


def test_context_values_that_json_cannot_hold_are_converted(entries):
    payload = {"day": datetime.date(2026, 1, 2), "amount": Decimal("1.50"), "id": uuid.UUID(int=1), "tags": {"b"}}
    with audit_context("test", context=payload):
        InvoiceFactory()
    assert entries()[0].context == {
        "day": "2026-01-02",
        "amount": "1.50",
        "id": "00000000-0000-0000-0000-000000000001",
        "tags": ["b"],
    }


def test_current_context_returns_the_innermost(user):
    assert current_context() is None
    with audit_context("outer", performed_by=user):
        with audit_context("inner"):
            assert current_context().context_type == "inner"
        assert current_context().context_type == "outer"
    assert current_context() is None


@pytest.mark.django_db(databases=["default", "other"])
def test_contexts_apply_per_database(user, other_user):
    with (
        audit_context("on-default", performed_by=user),
        audit_context("on-other", performed_by=other_user, using="other"),
    ):
        Invoice.objects.create(number="D")
        Invoice.objects.using("other").create(number="O")
    default = AuditLogEntry.objects.get()
    other = AuditLogEntry.objects.using("other").get()
    assert (default.context_type, default.performed_by_id) == ("on-default", user.pk)
    assert (other.context_type, other.performed_by_id) == ("on-other", other_user.pk)


@pytest.mark.django_db(databases=["default", "other"])
def test_a_context_on_one_database_does_not_apply_to_another(user):
    with audit_context("on-default", performed_by=user):
        Invoice.objects.using("other").create(number="O")
    assert AuditLogEntry.objects.using("other").get().context_type == "unknown"


@pytest.mark.parametrize(
    ("statement", "expected"),
    [
        ("SELECT 1", False),
        ("  select * from x for update", False),
        ("SAVEPOINT s1", False),
        ('INSERT INTO "x" VALUES (1)', True),
        ("WITH d AS (DELETE FROM x RETURNING *) SELECT * FROM d", True),
        ("-- comment\nSELECT 1", True),
        ("(SELECT 1) UNION (SELECT 2)", False),
        ("EXPLAIN SELECT * FROM x", False),
        ("EXPLAIN (ANALYZE, BUFFERS) UPDATE x SET a = 1", True),
        ("explain analyse delete from x", True),
        (b"SELECT 1", True),
    ],
)
def test_may_write_errs_on_the_side_of_writing(statement, expected):
    assert may_write(statement) is expected


@override_settings(AUDIT_LOG_REQUIRE_CONTEXT=True)
def test_required_context_refuses_writes_without_one(user):
    call_command("audit_log_install", stdout=open("/dev/null", "w"))  # noqa: SIM115
    refused = 'audit_log: INSERT on table "testapp_invoice" without an audit context'
    with pytest.raises(DatabaseError, match=refused), transaction.atomic():
        Invoice.objects.create(number="refused")
    with audit_context("test", performed_by=user):
        Invoice.objects.create(number="allowed")
    # An empty context table (left by an earlier context) is no context either.
    with pytest.raises(DatabaseError, match="without an audit context") as error, transaction.atomic():
        Invoice.objects.update(notes="refused too")
    assert "audit_context" in str(error.value.__cause__.diag.message_hint)
    assert Invoice.objects.filter(number="allowed").exists()


@override_settings(AUDIT_LOG_REQUIRE_CONTEXT=True)
def test_required_context_allows_statements_that_change_no_row():
    call_command("audit_log_install", stdout=open("/dev/null", "w"))  # noqa: SIM115
    Invoice.objects.filter(number="nothing").update(notes="x")
    Invoice.objects.filter(number="nothing").delete()


@pytest.mark.django_db(transaction=True)
def test_two_threads_with_two_users_do_not_cross_talk():
    users = [UserFactory(username="thread-a"), UserFactory(username="thread-b")]
    barrier = threading.Barrier(2)
    errors = []

    def work(user):
        try:
            with audit_context("thread", performed_by=user):
                for i in range(20):
                    barrier.wait(timeout=10)
                    Invoice.objects.create(number=f"{user.username}-{i}")
        except Exception as error:  # noqa: BLE001  # reported below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(user,)) for user in users]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    logged = AuditLogEntry.objects.all()
    assert logged.count() == 40
    for entry in logged:
        assert entry.changes["number"].startswith(entry.performed_by_label + "-")


@pytest.mark.django_db(transaction=True)
@override_settings(AUDIT_LOG_TRANSACTION_POOLING=True)
def test_transaction_pooling_keeps_the_context_row_inside_each_transaction(user, entries):
    connection.close()  # a fresh session, so the table is created for pooling
    with audit_context("pooled", performed_by=user):
        InvoiceFactory()
        assert context_rows() == []  # ON COMMIT DELETE ROWS: nothing outlives the change
        InvoiceFactory()
        with transaction.atomic():
            InvoiceFactory()
            assert context_rows() == ["pooled"]
        assert context_rows() == []
    assert [entry.context_type for entry in entries()] == ["pooled", "pooled", "pooled"]


def test_stack_is_per_connection():
    assert stack_for(connections["default"]) is stack_for(connections["default"])
    assert stack_for(connections["default"]) is not stack_for(connections["other"])


def test_unaudited_writes_also_write_the_context_row(user):
    # Any write may reach an audited table (a trigger, a function), so any write
    # writes the context row first.
    with audit_context("test", performed_by=user):
        NotAudited.objects.create(name="x")
        assert context_rows() == ["test"]


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.Database.__name__ != "psycopg", reason="server-side binding is a psycopg 3 option")
def test_context_works_with_psycopg3_server_side_binding(user):
    from audit_log.db.backend.base import DatabaseWrapper

    settings = {**connection.settings_dict, "OPTIONS": {"server_side_binding": True}}
    connections["bound"] = DatabaseWrapper(settings, "bound")  # a dynamic connection
    try:
        with audit_context("bound", performed_by=user, using="bound"):
            Invoice.objects.using("bound").create(number="bound")
        entry = AuditLogEntry.objects.get()
        assert (entry.context_type, entry.performed_by_id) == ("bound", user.pk)
    finally:
        connections["bound"].close()
        del connections["bound"]


def test_write_context_writes_before_a_select_that_writes(user, entries):
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE FUNCTION make_invoice() RETURNS int LANGUAGE sql AS "
            "$$ INSERT INTO testapp_invoice (number, status, amount, notes) VALUES ('fn', 'draft', 0, '') "
            "RETURNING id $$"
        )
    with audit_context("test", performed_by=user):
        write_context()
        with connection.cursor() as cursor:
            cursor.execute("SELECT make_invoice()")
    assert [entry.context_type for entry in entries()] == ["test"]
