"""The log is append-only for the application's role: guard, grants, retention, and a real non-superuser role."""

import datetime
import io
import re
import uuid

import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, connections, transaction
from django.utils import timezone

from audit_log import privileges
from audit_log.context import audit_context
from audit_log.db.backend.base import DatabaseWrapper
from audit_log.guard import log_maintenance
from audit_log.management.commands.audit_log_retention import cutoff
from tests.factories import InvoiceFactory
from tests.test_schema_changes import status_output
from tests.testapp.models import AuditLogEntry, Invoice

LOG = AuditLogEntry._meta.db_table


def run(statement, params=None, alias="default"):
    with connections[alias].cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.fetchall() if cursor.description else None


# --- the append-only guard (even for the log's owner) ------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("statement", [f"DELETE FROM {LOG}", f"UPDATE {LOG} SET changes = '{{}}'"])
def test_guard_refuses_update_and_delete_with_a_hint(statement):
    InvoiceFactory()
    refused = "on the audit log testapp_auditlogentry refused"
    with pytest.raises(DatabaseError, match=refused) as error, transaction.atomic():
        run(statement)
    assert error.value.__cause__.diag.sqlstate == "42501"  # insufficient_privilege (psycopg2 and 3 alike)
    assert "audit_log_retention" in error.value.__cause__.diag.message_hint
    assert AuditLogEntry.objects.count() == 1


@pytest.mark.django_db
def test_guard_refuses_the_orm_too():
    InvoiceFactory()
    with pytest.raises(DatabaseError, match="refused"), transaction.atomic():
        AuditLogEntry.objects.all().delete()


@pytest.mark.django_db
def test_maintenance_changes_get_through_and_are_recorded_with_their_context(user):
    InvoiceFactory(number="A")
    InvoiceFactory(number="B")
    first, second = AuditLogEntry.objects.order_by("id")
    with audit_context("gdpr-erasure", performed_by=user), log_maintenance():
        AuditLogEntry.objects.filter(pk=first.pk).update(changes={"number": "erased"})
        AuditLogEntry.objects.filter(pk=second.pk).delete()
    update, delete = AuditLogEntry.objects.filter(table_name=LOG).order_by("id")
    assert (update.action, update.changes["entries"], update.changes["first_id"]) == ("UPDATE", 1, first.pk)
    assert (delete.action, delete.changes["entries"], delete.changes["first_id"]) == ("DELETE", 1, second.pk)
    assert {(entry.context_type, entry.performed_by_id) for entry in (update, delete)} == {("gdpr-erasure", user.pk)}
    assert AuditLogEntry.objects.get(pk=first.pk).changes == {"number": "erased"}


@pytest.mark.django_db
def test_truncate_is_left_to_privileges():
    # Django's test runner and `flush` empty every table with TRUNCATE.
    InvoiceFactory()
    run(f"TRUNCATE {LOG}")
    assert AuditLogEntry.objects.count() == 0


@pytest.mark.django_db
def test_status_reports_the_guard_and_install_repairs_it():
    code, out = status_output()
    assert code == 0
    assert re.search(r"testapp_auditlogentry\s+ok\s+testapp.AuditLogEntry\s+\(append-only guard\)", out)
    run(f'DROP TRIGGER "audit_log_guard" ON {LOG}')
    code, out = status_output()
    assert code == 1
    assert "append-only guard: missing audit_log_guard" in out
    call_command("audit_log_install", stdout=io.StringIO())
    assert status_output()[0] == 0


@pytest.mark.django_db
def test_status_reports_a_function_that_does_not_run_as_its_owner():
    run('ALTER FUNCTION "audit_log_fn_testapp_invoice"() SECURITY INVOKER')
    code, out = status_output()
    assert code == 1
    assert "does not run as its owner (SECURITY DEFINER)" in out


@pytest.mark.django_db
def test_status_says_what_the_connected_role_can_do_to_the_log():
    _, out = status_output()
    assert f"Log privileges: role {connection.settings_dict['USER']} is a superuser: it could rewrite history" in out


# --- retention --------------------------------------------------------------------------


def test_cutoff_reads_dates_and_durations():
    now = datetime.datetime(2026, 12, 1, 12, tzinfo=datetime.UTC)
    assert cutoff(None, "90d", now) == now - datetime.timedelta(days=90)
    assert cutoff(None, "24m", now) == now - datetime.timedelta(days=720)
    assert cutoff("2026-01-02T03:04:05+00:00", None, now) == datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
    assert cutoff("2026-01-02", None, now).date() == datetime.date(2026, 1, 2)
    for before, keep in [(None, None), ("2026-01-01", "1d"), (None, "3 months"), ("yesterday", None)]:
        with pytest.raises(CommandError):
            cutoff(before, keep, now)


@pytest.mark.django_db
def test_retention_deletes_old_entries_in_batches_and_records_each_batch():
    for number in range(5):
        InvoiceFactory(number=f"OLD-{number}")
    InvoiceFactory(number="NEW")
    long_ago = timezone.now() - datetime.timedelta(days=400)
    with log_maintenance():
        AuditLogEntry.objects.exclude(changes__number="NEW").update(at=long_ago)
    out = io.StringIO()
    call_command("audit_log_retention", keep="365d", dry_run=True, stdout=out)
    assert "5 entries written before" in out.getvalue()
    call_command("audit_log_retention", keep="365d", batch=2, stdout=out)
    assert "Deleted 5 entries written before" in out.getvalue()
    records = AuditLogEntry.objects.filter(table_name=LOG, action="DELETE").order_by("id")
    assert [record.changes["entries"] for record in records] == [2, 2, 1]
    assert {record.context_type for record in records} == {"retention"}
    assert list(
        AuditLogEntry.objects.filter(table_name="testapp_invoice").values_list("changes__number", flat=True)
    ) == ["NEW"]


# --- a real application role -------------------------------------------------------------


@pytest.fixture
def app_role(transactional_db):
    """A non-superuser role with the usual grants on every table, and a connection that uses it."""
    role = f"audit_app_{uuid.uuid4().hex[:12]}"
    run(f'CREATE ROLE "{role}" LOGIN')
    run(f'GRANT USAGE ON SCHEMA public TO "{role}"')
    run(f'GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON ALL TABLES IN SCHEMA public TO "{role}"')
    run(f'GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO "{role}"')
    connections["app"] = DatabaseWrapper({**connection.settings_dict, "USER": role, "PASSWORD": ""}, "app")
    try:
        yield role
    finally:
        connections["app"].close()
        del connections["app"]
        run(f'DROP OWNED BY "{role}"')
        run(f'DROP ROLE "{role}"')


def test_grants_leave_the_application_role_only_select_and_its_writes_are_still_logged(app_role):
    before = privileges.report(connection, app_role)
    assert before.privileges == ("INSERT", "UPDATE", "DELETE", "TRUNCATE")
    out = io.StringIO()
    call_command("audit_log_grants", app_role=app_role, stdout=out)
    assert f'REVOKE ALL ON TABLE "testapp_auditlogentry" FROM "{app_role}";' in out.getvalue()
    call_command("audit_log_grants", app_role=app_role, apply=True, stdout=out)
    call_command("audit_log_grants", app_role=app_role, apply=True, stdout=out)  # idempotent
    assert f"role {app_role} can read the log but not change it" in out.getvalue()

    with audit_context("app", using="app"):
        invoice = Invoice.objects.using("app").create(number="APP-1")
    [entry] = AuditLogEntry.objects.filter(object_id=str(invoice.pk))
    assert (entry.action, entry.context_type) == ("INSERT", "app")
    assert AuditLogEntry.objects.using("app").count() == 1  # it may read the log (the admin does)

    for statement in (
        f"UPDATE {LOG} SET changes = '{{}}'",
        f"DELETE FROM {LOG}",
        f"TRUNCATE {LOG}",
        f"INSERT INTO {LOG} (object_id, table_name, action, at, changes, transaction_id, context_type, context, "
        "performed_by_label, tenant) VALUES ('1', 'forged', 'INSERT', now(), '{}', 1, 'forged', '{}', '', '')",
        "SELECT audit_log_retain_testapp_auditlogentry(now(), 10)",
    ):
        with pytest.raises(DatabaseError, match="permission denied"):
            run(statement, alias="app")
    assert AuditLogEntry.objects.count() == 1


def test_a_temporary_table_cannot_hide_the_application_roles_writes(app_role):
    call_command("audit_log_grants", app_role=app_role, apply=True, stdout=io.StringIO())
    # Relations are looked up in pg_temp first unless the search path puts it last.
    run(f"CREATE TEMPORARY TABLE {LOG} (LIKE public.{LOG} INCLUDING ALL)", alias="app")
    invoice = Invoice.objects.using("app").create(number="HIDDEN?")
    assert AuditLogEntry.objects.filter(object_id=str(invoice.pk)).count() == 1
    assert run(f"SELECT count(*) FROM pg_temp.{LOG}", alias="app") == [(0,)]


@pytest.mark.django_db
def test_grants_warn_about_a_superuser_or_owning_application_role():
    plan = privileges.grant_statements(connection, connection.settings_dict["USER"])
    assert any("is a superuser" in warning for warning in plan.warnings)
    assert any("owns the log table" in warning for warning in plan.warnings)
    plan = privileges.grant_statements(connection, "no_such_role_here")
    assert any("There is no role" in warning for warning in plan.warnings)
