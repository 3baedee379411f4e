"""``AddAuditLogging`` / ``RemoveAuditLogging``: triggers by hand, on any PostgreSQL backend."""

import io

import pytest
from django.apps import apps
from django.core.management import call_command
from django.db import connection, migrations, models
from django.db.backends.postgresql.schema import DatabaseSchemaEditor as StockSchemaEditor
from django.db.migrations.state import ProjectState
from django.db.migrations.writer import MigrationWriter
from django.test.utils import override_settings

from audit_log import sql, triggers
from audit_log.db.migrations.operations import AddAuditLogging, RemoveAuditLogging
from tests.test_schema_editor import logged, run, triggers_on

pytestmark = pytest.mark.django_db

APP = "optest"


class DenyOptest:
    def allow_migrate(self, db, app_label, **hints):
        return app_label != APP


def state_with_plain_model():
    """A state with an unaudited model, created by Django's stock schema editor."""
    state = ProjectState.from_apps(apps)
    create = migrations.CreateModel(
        "Plain", [("id", models.AutoField(primary_key=True)), ("name", models.CharField(max_length=20))]
    )
    new_state = state.clone()
    create.state_forwards(APP, new_state)
    with StockSchemaEditor(connection) as editor:
        create.database_forwards(APP, editor, state, new_state)
    return new_state


def apply(operation, state, backwards=False):
    new_state = state.clone()
    operation.state_forwards(APP, new_state)
    with StockSchemaEditor(connection) as editor:
        if backwards:
            operation.database_backwards(APP, editor, new_state, state)
        else:
            operation.database_forwards(APP, editor, state, new_state)
    return new_state


def test_add_audit_logging_works_with_the_stock_backend_and_reverses():
    state = state_with_plain_model()
    after = apply(AddAuditLogging(model="Plain"), state)
    assert triggers_on("optest_plain") == set(sql.TRIGGER_NAMES.values())
    run("INSERT INTO optest_plain (name) VALUES ('a')")
    assert logged("optest_plain") == [("INSERT", {"id": 1, "name": "a"})]
    apply(AddAuditLogging(model="Plain"), after, backwards=True)
    assert triggers_on("optest_plain") == set()
    run("INSERT INTO optest_plain (name) VALUES ('b')")
    assert len(logged("optest_plain")) == 1


def test_remove_audit_logging_removes_and_reverses():
    state = apply(AddAuditLogging(model="Plain"), state_with_plain_model())
    after = apply(RemoveAuditLogging(model="Plain"), state)
    assert triggers_on("optest_plain") == set()
    apply(RemoveAuditLogging(model="Plain"), after, backwards=True)
    assert triggers_on("optest_plain") == set(sql.TRIGGER_NAMES.values())


def test_operations_respect_the_database_router():
    state = state_with_plain_model()
    with override_settings(DATABASE_ROUTERS=[DenyOptest()]):
        apply(AddAuditLogging(model="Plain"), state)
    assert triggers_on("optest_plain") == set()


def test_operations_describe_and_deconstruct_themselves():
    add, remove = AddAuditLogging(model="Invoice"), RemoveAuditLogging(model="Invoice")
    assert add.describe() == "Add audit logging to Invoice"
    assert remove.describe() == "Remove audit logging from Invoice"
    assert add.migration_name_fragment == "add_audit_logging_invoice"
    assert remove.migration_name_fragment == "remove_audit_logging_invoice"
    assert add.deconstruct() == ("AddAuditLogging", [], {"model": "Invoice"})
    assert add.reversible
    assert remove.reversible
    assert add.references_model("invoice", "testapp")
    text, imports = MigrationWriter.serialize(add)
    assert text == "audit_log.db.migrations.operations.AddAuditLogging(\n    model='Invoice',\n)"
    assert imports == {"import audit_log.db.migrations.operations"}


def test_add_audit_logging_shows_in_sqlmigrate_style_collection():
    state = state_with_plain_model()
    new_state = state.clone()
    with StockSchemaEditor(connection, collect_sql=True) as editor:
        AddAuditLogging(model="Plain").database_forwards(APP, editor, state, new_state)
    assert any('CREATE OR REPLACE TRIGGER "audit_log_insert"' in statement for statement in editor.collected_sql)
    assert triggers_on("optest_plain") == set()


def status_of(table):
    return {result.table: result for result in triggers.status(connection)}.get(table)


def test_a_table_audited_by_the_operation_is_known_to_status_and_install():
    # A model of an installed app, without an AuditLogsField: only the operation audits it.
    state = ProjectState.from_apps(apps)
    operation = AddAuditLogging(model="NotAudited")
    new_state = state.clone()
    operation.state_forwards("testapp", new_state)
    with StockSchemaEditor(connection) as editor:
        operation.database_forwards("testapp", editor, state, new_state)
    assert status_of("testapp_notaudited").state == "ok"
    out = io.StringIO()
    call_command("audit_log_install", stdout=out)
    assert "Installed triggers on testapp_notaudited (testapp.NotAudited, audited by AddAuditLogging)" in out.getvalue()
    [[key]] = run("INSERT INTO testapp_notaudited (name) VALUES ('kept') RETURNING id")
    assert logged("testapp_notaudited") == [("INSERT", {"id": key, "name": "kept"})]
    assert status_of("testapp_notaudited").state == "ok"
    with StockSchemaEditor(connection) as editor:
        operation.database_backwards("testapp", editor, new_state, state)
    assert status_of("testapp_notaudited") is None


def test_install_never_removes_triggers_unless_asked():
    run("CREATE TABLE leftover (id int)")
    run(
        'CREATE TRIGGER "audit_log_insert" AFTER INSERT ON leftover '
        'FOR EACH STATEMENT EXECUTE FUNCTION "audit_log_fn_testapp_invoice"()'
    )
    out = io.StringIO()
    call_command("audit_log_install", stdout=out)
    assert 'Left orphaned triggers on "public"."leftover" alone' in out.getvalue()
    assert triggers_on("leftover") == {"audit_log_insert"}
    call_command("audit_log_install", prune=True, stdout=out)
    assert 'Removed orphaned triggers from "public"."leftover"' in out.getvalue()
    assert triggers_on("leftover") == set()
