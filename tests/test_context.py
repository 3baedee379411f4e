"""``audit_context`` and the channel that hands the context to the triggers."""

import datetime
import threading
import uuid
from decimal import Decimal

import pytest
from asgiref.sync import async_to_sync
from django.core.management import call_command
from django.db import DatabaseError, connection, connections, transaction
from django.db.transaction import TransactionManagementError
from django.test.utils import CaptureQueriesContext, override_settings

from audit_log.context import audit_context, carries_context, current_context, stack_for, write_context
from tests.factories import InvoiceFactory, UserFactory
from tests.testapp.models import AuditLogContext, AuditLogEntry, Invoice, NotAudited

pytestmark = pytest.mark.django_db

SET_CONTEXT = "SET LOCAL audit_log.context = "


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


@pytest.mark.parametrize(
    ("context_type", "label"),
    [
        ("http-request", "Request"),
        ("management-command", "Management command"),
        ("unknown", "No context"),
        ("revert", "Revert"),
        ("restore", "Restore"),
        ("celery-task", "Celery task"),  # AUDIT_LOG_CONTEXT_TYPE_CHOICES adds
        ("nightly-import", "nightly-import"),  # unlisted: as stored
    ],
)
def test_context_type_label_of_built_in_and_configured_types(context_type, label):
    assert AuditLogEntry(context_type=context_type).context_type_label == label


def test_context_type_choices_relabel_built_in_types(settings):
    settings.AUDIT_LOG_CONTEXT_TYPE_CHOICES = [("http-request", "Web request")]
    assert AuditLogEntry(context_type="http-request").context_type_label == "Web request"
    assert AuditLogEntry(context_type="unknown").context_type_label == "No context"
    assert AuditLogEntry(context_type="celery-task").context_type_label == "celery-task"


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
    assert entry.tenant == ""  # the context model's default fills custom columns


def test_entering_a_context_costs_no_query_and_reads_go_unchanged(user):
    with CaptureQueriesContext(connection) as queries, audit_context("test", performed_by=user):
        list(Invoice.objects.all())
    [read] = queries.captured_queries
    assert read["sql"].startswith("SELECT")


def test_each_write_carries_the_context_in_its_own_statement(user):
    with audit_context("test", performed_by=user), CaptureQueriesContext(connection) as queries:
        InvoiceFactory()
        Invoice.objects.update(notes="x")
    statements = [query["sql"] for query in queries.captured_queries]
    assert len(statements) == 2  # no statement of its own: it rides with each write
    assert all(statement.startswith(SET_CONTEXT) for statement in statements)
    assert '"context_type":"test"' in statements[0]


@pytest.mark.django_db(transaction=True)
def test_nothing_outlives_the_write_in_autocommit(user, django_assert_num_queries, visible_context):
    with django_assert_num_queries(1), audit_context("test", performed_by=user):
        InvoiceFactory()
    assert visible_context() == ""


def test_leaving_a_context_inside_an_open_transaction_hides_it(user, visible_context):
    # The test runs inside a transaction: the SET LOCAL of the write would last
    # until it ends, so leaving the context sends one statement to clear it.
    with CaptureQueriesContext(connection) as queries:
        with audit_context("test", performed_by=user):
            InvoiceFactory()
            assert visible_context().startswith('{"context_type":"test"')
        assert visible_context() == ""
    assert queries.captured_queries[-2]["sql"] == "SET LOCAL audit_log.context = ''"


def test_leaving_a_context_that_did_not_write_sends_nothing(user, django_assert_num_queries):
    with django_assert_num_queries(0), audit_context("test", performed_by=user):
        pass


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


def test_context_values_keep_quotes_backslashes_percent_and_unicode(entries):
    awkward = 'it\'s 100% \\ "quoted" ; -- not a comment; æøå 🦆'
    with audit_context("test", context={awkward: awkward}, tenant="50% off"):
        InvoiceFactory()
        with connection.cursor() as cursor:
            cursor.execute("UPDATE testapp_invoice SET notes = 'raw, no parameters'")
    assert [(entry.context, entry.tenant) for entry in entries()] == [({awkward: awkward}, "50% off")] * 2


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
        ('INSERT INTO "x" VALUES (1)', True),
        ("  update x set a = 1", True),
        ("DELETE FROM x", True),
        ("MERGE INTO x USING y ON true WHEN MATCHED THEN DELETE", True),
        ("TRUNCATE x", True),
        ("COPY x FROM '/tmp/x.csv'", True),
        ("WITH d AS (DELETE FROM x RETURNING *) SELECT * FROM d", True),
        ("EXECUTE prepared_insert(1)", True),
        ("-- comment\nINSERT INTO x VALUES (1)", True),
        ("/* a comment */ ( UPDATE x SET a = 1 )", True),
        ("EXPLAIN (ANALYZE, BUFFERS) UPDATE x SET a = 1", True),
        ("explain analyse delete from x", True),
        ("SELECT 1", False),
        ("  select * from x for update", False),
        ("(SELECT 1) UNION (SELECT 2)", False),
        ("EXPLAIN DELETE FROM x", False),
        ("BEGIN", False),
        ("SAVEPOINT s1", False),
        ("ROLLBACK TO SAVEPOINT s1", False),
        ("/* comment */ DISCARD ALL", False),  # cannot run inside the implicit transaction a prefix makes
        ("CALL p()", False),  # a procedure may COMMIT: likewise
        ("DO $$ BEGIN END $$", False),
        ("VACUUM x", False),
        ("CREATE INDEX CONCURRENTLY i ON x (a)", False),
        ("SET search_path TO x", False),
        ("", False),
        ("-- only a comment", False),
    ],
)
def test_carries_context_only_for_statements_that_can_fire_triggers(statement, expected):
    assert carries_context(statement) is expected


@pytest.mark.django_db(transaction=True)
def test_statements_that_cannot_run_in_a_transaction_block_still_work_in_a_context(user):
    with audit_context("test", performed_by=user), connection.cursor() as cursor:
        cursor.execute("/* comment */ DISCARD ALL")
        cursor.execute("VACUUM testapp_notaudited")
        cursor.execute("CREATE PROCEDURE audit_log_test_commit() LANGUAGE plpgsql AS $$ BEGIN COMMIT; END $$")
        try:
            cursor.execute("CALL audit_log_test_commit()")
        finally:
            cursor.execute("DROP PROCEDURE audit_log_test_commit()")


@override_settings(AUDIT_LOG_REQUIRE_CONTEXT=True)
def test_required_context_refuses_writes_without_one(user):
    call_command("audit_log_install", stdout=open("/dev/null", "w"))  # noqa: SIM115
    refused = 'audit_log: INSERT on table "testapp_invoice" without an audit context'
    with pytest.raises(DatabaseError, match=refused), transaction.atomic():
        Invoice.objects.create(number="refused")
    with audit_context("test", performed_by=user):
        Invoice.objects.create(number="allowed")
    # A context that has ended is no context either, in the same transaction too.
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


def test_stack_is_per_connection():
    assert stack_for(connections["default"]) is stack_for(connections["default"])
    assert stack_for(connections["default"]) is not stack_for(connections["other"])


def test_unaudited_writes_carry_the_context_too(user):
    # Any write may reach an audited table (a trigger, a rule), so every write carries it.
    with CaptureQueriesContext(connection) as queries, audit_context("test", performed_by=user):
        NotAudited.objects.create(name="x")
    assert queries.captured_queries[0]["sql"].startswith(SET_CONTEXT)


@pytest.mark.django_db(transaction=True)
def test_executemany_gets_the_context_in_autocommit_and_in_a_transaction(user, entries, visible_context):
    statement = "INSERT INTO testapp_invoice (number, status, amount, notes) VALUES (%s, 'draft', 0, '')"
    with audit_context("many", performed_by=user), connection.cursor() as cursor:
        cursor.executemany(statement, [("M-1",), ("M-2",)])
        with transaction.atomic():
            cursor.executemany(statement, [("M-3",)])
    assert [(entry.changes["number"], entry.context_type) for entry in entries()] == [
        ("M-1", "many"),
        ("M-2", "many"),
        ("M-3", "many"),
    ]
    assert visible_context() == ""


def test_psycopg_composed_statements_get_the_context(user, entries):
    if connection.Database.__name__ == "psycopg":
        from psycopg import sql
    else:
        from psycopg2 import sql
    statement = sql.SQL("UPDATE {} SET notes = {}").format(sql.Identifier("testapp_invoice"), sql.Literal("composed"))
    InvoiceFactory()
    with audit_context("composed", performed_by=user), connection.cursor() as cursor:
        cursor.execute(statement)
        assert cursor.rowcount == 1
    assert [entry.context_type for entry in entries()] == ["unknown", "composed"]


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.Database.__name__ != "psycopg", reason="server-side binding is a psycopg 3 option")
def test_context_works_with_psycopg3_server_side_binding(user, entries, visible_context):
    from audit_log.db.backend.base import DatabaseWrapper

    settings = {**connection.settings_dict, "OPTIONS": {"server_side_binding": True}}
    connections["bound"] = DatabaseWrapper(settings, "bound")  # a dynamic connection
    try:
        with audit_context("bound", performed_by=user, using="bound"):
            invoice = Invoice.objects.using("bound").create(number="bound")  # RETURNING reaches Django
            assert Invoice.objects.using("bound").filter(pk=invoice.pk).update(notes="x") == 1
            with transaction.atomic(using="bound"):
                Invoice.objects.using("bound").filter(pk=invoice.pk).update(notes="y")
        assert [(entry.context_type, entry.performed_by_id) for entry in entries()] == [("bound", user.pk)] * 3
        assert visible_context("bound") == ""
    finally:
        connections["bound"].close()
        del connections["bound"]


def test_returning_and_rowcount_reach_django_through_the_prefix(user):
    with audit_context("test", performed_by=user):
        invoice = Invoice.objects.create(number="R-1")
        assert invoice.pk is not None
        assert Invoice.objects.filter(pk=invoice.pk).update(notes="x") == 1
        created = Invoice.objects.bulk_create([Invoice(number=f"B-{i}") for i in range(3)])
        assert all(obj.pk for obj in created)
        assert Invoice.objects.filter(number__startswith="B-").delete()[0] == 3


def _make_invoice_function():
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE FUNCTION make_invoice() RETURNS int LANGUAGE sql AS "
            "$$ INSERT INTO testapp_invoice (number, status, amount, notes) VALUES ('fn', 'draft', 0, '') "
            "RETURNING id $$"
        )


def test_write_context_hands_the_context_to_a_select_that_writes(user, entries):
    _make_invoice_function()
    with audit_context("test", performed_by=user), transaction.atomic():
        write_context()
        with connection.cursor() as cursor:
            cursor.execute("SELECT make_invoice()")
    with connection.cursor() as cursor:
        cursor.execute("SELECT make_invoice()")  # the context has ended
    assert [entry.context_type for entry in entries()] == ["test", "unknown"]


@pytest.mark.django_db(transaction=True)
def test_write_context_outside_a_transaction_says_what_to_do(user):
    with audit_context("test", performed_by=user), pytest.raises(TransactionManagementError, match="atomic"):
        write_context()
    with pytest.raises(RuntimeError, match="active audit context"):
        write_context()
