"""Schema changes never break writes or unmask a column (found by running Django's own test suite)."""

import io
import re

import pytest
from django.apps import apps
from django.core import checks
from django.core.management import CommandError, call_command
from django.db import connection, migrations, models
from django.test.utils import CaptureQueriesContext, override_settings

from audit_log import sql, triggers
from audit_log.checks import register as register_checks
from audit_log.db.backend.schema import DatabaseSchemaEditor
from audit_log.fields import AuditLogsField
from audit_log.loading import get_context_model, get_log_entry_model
from tests.test_schema_editor import Migrator, create_audited, logged, run
from tests.testapp.models import AuditLogContext, AuditLogEntry

pytestmark = pytest.mark.django_db


@pytest.fixture
def migrator():
    return Migrator()


@pytest.fixture
def other_schema():
    run('CREATE SCHEMA "Other Schema"')
    yield "Other Schema"
    run('DROP SCHEMA "Other Schema" CASCADE')


def writes_are_logged(table, *, pk="id", name="name"):
    """INSERT, UPDATE and DELETE one row of ``table`` (SQL names as Django gives them) and return the log."""
    qtable = sql.quote_name(table)
    qname = sql.quote_name(name)
    [[key]] = run(f"INSERT INTO {qtable} ({qname}) VALUES ('a') RETURNING {sql.quote_name(pk)}")
    run(f"UPDATE {qtable} SET {qname} = 'b'")
    run(f"DELETE FROM {qtable}")
    return key, logged(table)


# --- 1. names Django treats as already quoted ---------------------------------------


def test_schema_qualified_table_is_audited_with_the_log_where_it_is(migrator, other_schema):
    table = '"Other Schema"."book"'
    migrator.forwards(create_audited(table=table))
    key, log = writes_are_logged(table)
    assert log == [
        ("INSERT", {"id": key, "name": "a"}),
        ("UPDATE", {"name": ["a", "b"]}),
        ("DELETE", {"id": key, "name": "b"}),
    ]
    # The function lives beside the table, and status finds both.
    [[schema]] = run(
        "SELECT n.nspname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE p.proname = %s",
        [sql.function_name(table)],
    )
    assert schema == "Other Schema"
    migrator.forwards(migrations.DeleteModel("Thing"))
    assert run("SELECT count(*) FROM pg_proc WHERE proname = %s", [sql.function_name(table)]) == [(0,)]


def test_quoted_db_column_and_quoted_primary_key_are_logged_by_their_names(migrator):
    migrator.forwards(
        migrations.CreateModel(
            "Thing",
            [
                ("ident", models.AutoField(primary_key=True, db_column='"quoted_id"')),
                ("title", models.CharField(max_length=50, db_column='"Quoted Title"')),
                ("audit_logs", AuditLogsField(to="testapp.auditlogentry")),
            ],
        )
    )
    key, log = writes_are_logged("schematest_thing", pk='"quoted_id"', name='"Quoted Title"')
    assert log == [
        ("INSERT", {"quoted_id": key, "Quoted Title": "a"}),
        ("UPDATE", {"Quoted Title": ["a", "b"]}),
        ("DELETE", {"quoted_id": key, "Quoted Title": "b"}),
    ]
    [[object_id]] = run("SELECT DISTINCT object_id FROM testapp_auditlogentry WHERE table_name = 'schematest_thing'")
    assert object_id == str(key)


def test_status_checks_a_schema_qualified_table_in_its_schema(migrator, other_schema):
    table = '"Other Schema"."book"'
    migrator.forwards(create_audited(table=table))
    model = migrator.state.apps.get_model("schematest", "Thing")

    def state():
        return {result.table: result.state for result in triggers.status(connection, [model])}[table]

    assert state() == "ok"
    run(f'ALTER TABLE {sql.quote_name(table)} DISABLE TRIGGER "audit_log_update"')
    assert state() == "disabled"


# --- 2. renaming the primary key's column ---------------------------------------------


@pytest.mark.parametrize(
    "operation",
    [
        migrations.RenameField("Thing", "id", "ident"),
        migrations.AlterField("Thing", "id", models.AutoField(primary_key=True, db_column="ident")),
    ],
    ids=["RenameField", "AlterField db_column"],
)
def test_renaming_the_primary_key_column_keeps_writes_working(migrator, operation):
    migrator.forwards(create_audited(), operation)
    key, log = writes_are_logged("schematest_thing", pk="ident")
    assert log == [
        ("INSERT", {"ident": key, "name": "a"}),
        ("UPDATE", {"name": ["a", "b"]}),
        ("DELETE", {"ident": key, "name": "b"}),
    ]


# --- 3. db_column of masked and excluded fields ------------------------------------------


def test_changing_the_column_of_masked_and_excluded_fields_keeps_them_masked_and_excluded(migrator):
    migrator.forwards(
        migrations.CreateModel(
            "Account",
            [
                ("id", models.AutoField(primary_key=True)),
                ("password", models.CharField(max_length=50)),
                ("last_seen", models.IntegerField(default=0)),
                ("audit_logs", AuditLogsField(to="testapp.auditlogentry", exclude=["last_seen"], mask=["password"])),
            ],
        )
    )
    migrator.forwards(
        migrations.AlterField("Account", "password", models.CharField(max_length=50, db_column="pwd")),
        migrations.AlterField("Account", "last_seen", models.IntegerField(default=0, db_column="seen")),
    )
    run("INSERT INTO schematest_account (pwd, seen) VALUES ('s3cret-1', 1)")
    run("UPDATE schematest_account SET pwd = 's3cret-2', seen = 2")
    run("UPDATE schematest_account SET seen = 3")  # an excluded column alone: no entry
    assert [changes for _, changes in logged("schematest_account")] == [
        {"id": 1, "pwd": sql.MASKED_VALUE},
        {"pwd": [sql.MASKED_VALUE, sql.MASKED_VALUE]},
    ]


# --- 4. checks of an app that is not installed ----------------------------------------------


def test_checks_say_nothing_when_the_app_is_not_installed():
    register_checks()  # as AppConfig.ready() did: registered for the process
    installed = [app.name for app in apps.get_app_configs() if app.name != "audit_log"]
    with override_settings(INSTALLED_APPS=installed, AUDIT_LOG_ENTRY_MODEL=None):
        assert [message.id for message in checks.run_checks() if message.id.startswith("audit_log.")] == []
    with override_settings(AUDIT_LOG_ENTRY_MODEL=None):
        assert "audit_log.E002" in {message.id for message in checks.run_checks()}


# --- 5. orphaned trigger functions ---------------------------------------------------------


def status_output():
    out = io.StringIO()
    try:
        call_command("audit_log_status", stdout=out, no_color=True)
    except CommandError as error:
        return error.returncode, out.getvalue()
    return 0, out.getvalue()


def test_orphaned_functions_are_reported_and_pruned(migrator):
    migrator.forwards(create_audited())
    run("DROP TABLE schematest_thing")  # behind the migrations' back: the function stays
    code, out = status_output()
    assert code == 1
    assert re.search(r'"public"\."audit_log_fn_schematest_thing"\s+orphaned function', out)
    call_command("audit_log_install", stdout=io.StringIO())  # without --prune it stays
    assert status_output()[0] == 1
    out = io.StringIO()
    call_command("audit_log_install", prune=True, stdout=out)
    assert 'Dropped orphaned function "public"."audit_log_fn_schematest_thing"' in out.getvalue()
    assert status_output()[0] == 0


# --- 6. no reinstall when the trigger would come out the same --------------------------------


def test_column_type_changes_that_leave_the_trigger_alike_run_no_trigger_ddl(migrator):
    migrator.forwards(create_audited())
    with CaptureQueriesContext(connection) as queries:
        migrator.forwards(migrations.AlterField("Thing", "name", models.CharField(max_length=200)))
    statements = [query["sql"] for query in queries.captured_queries]
    assert any("ALTER COLUMN" in statement for statement in statements)
    assert not any("audit_log" in statement for statement in statements)
    with CaptureQueriesContext(connection) as queries:  # a change the trigger must follow
        migrator.forwards(migrations.AlterField("Thing", "name", models.CharField(max_length=200, db_column="label")))
    assert any("CREATE OR REPLACE FUNCTION" in query["sql"] for query in queries.captured_queries)


# --- 8. content types whose model name does not fit -----------------------------------------


def test_a_model_name_too_long_for_a_content_type_does_not_fail_the_write(migrator):
    long_name = "Thing" + "x" * 120  # longer than django_content_type.model holds (100)
    migrator.forwards(create_audited(name=long_name, table="schematest_long"))
    run("INSERT INTO schematest_long (name) VALUES ('a')")
    [[content_type, object_id]] = run("SELECT content_type_id, object_id FROM testapp_auditlogentry")
    assert (content_type, object_id) == (None, "1")


def test_a_log_table_in_its_own_schema_is_written_by_tables_elsewhere(migrator, other_schema):
    log = migrator.state.models["testapp", "auditlogentry"]
    migrator.forwards(
        migrations.CreateModel(
            "SchemaLog",
            [(name, field.clone()) for name, field in log.fields.items()],
            options={"db_table": '"Other Schema"."entries"'},
        ),
        migrations.CreateModel(
            "Thing",
            [
                ("id", models.AutoField(primary_key=True)),
                ("name", models.CharField(max_length=50)),
                ("audit_logs", AuditLogsField(to="schematest.schemalog")),
            ],
        ),
    )
    run("INSERT INTO schematest_thing (name) VALUES ('a')")
    assert run('SELECT action, table_name FROM "Other Schema"."entries"') == [("INSERT", "schematest_thing")]


# --- found by running Django's own test suite with every table audited ---------------------


class AuditsThroughTables(DatabaseSchemaEditor):
    """A schema editor that also audits auto-created many-to-many tables (as ``tests/django_suite`` does)."""

    def audit_options(self, model):
        if model._meta.auto_created:
            return AuditLogsField(to="testapp.auditlogentry")
        return super().audit_options(model)


def test_renaming_a_model_renames_its_audited_many_to_many_table_and_logs_under_the_new_model(migrator):
    migrator.editor_class = AuditsThroughTables
    migrator.forwards(
        migrations.CreateModel("Stable", [("id", models.AutoField(primary_key=True))]),
        migrations.CreateModel(
            "Pony",
            [("id", models.AutoField(primary_key=True)), ("stables", models.ManyToManyField("Stable"))],
        ),
    )
    migrator.forwards(migrations.RenameModel("Pony", "Horse"))  # renames schematest_pony_stables too
    run("INSERT INTO schematest_stable DEFAULT VALUES")
    run("INSERT INTO schematest_horse DEFAULT VALUES")
    run("INSERT INTO schematest_horse_stables (horse_id, stable_id) VALUES (1, 1)")
    # A many-to-many table's rows are logged under the model declaring the field, by their key to it.
    [[model, object_id]] = run(
        "SELECT ct.model, e.object_id FROM testapp_auditlogentry e "
        "JOIN django_content_type ct ON ct.id = e.content_type_id WHERE e.table_name = 'schematest_horse_stables'"
    )
    assert (model, object_id) == ("horse", "1")


def test_renaming_a_model_that_keeps_its_table_replaces_only_the_function(migrator):
    migrator.forwards(create_audited(table="schematest_kept"))
    with CaptureQueriesContext(connection) as queries:
        migrator.forwards(migrations.RenameModel("Thing", "Renamed"))
    statements = [
        query["sql"]
        for query in queries.captured_queries
        if "SAVEPOINT" not in query["sql"] and not query["sql"].startswith("SELECT current_schemas")
    ]
    assert len(statements) == 1  # (the schema editor's savepoint and the search-path lookup aside)
    assert statements[0].startswith('CREATE OR REPLACE FUNCTION "audit_log_fn_schematest_kept"()')
    assert "'renamed'" in statements[0]  # the content type it now logs


def test_column_changes_replace_only_the_function_not_the_triggers(migrator):
    migrator.forwards(create_audited())
    with CaptureQueriesContext(connection) as queries:
        migrator.forwards(migrations.AddField("Thing", "colour", models.CharField(max_length=9, default="red")))
    trigger_ddl = [query["sql"] for query in queries.captured_queries if "audit_log" in query["sql"]]
    assert [statement.split("(")[0] for statement in trigger_ddl] == [
        'CREATE OR REPLACE FUNCTION "audit_log_fn_schematest_thing"'
    ]


def test_log_models_are_found_while_the_registry_is_narrowed():
    apps.set_available_apps(["django.contrib.contenttypes", "django.contrib.auth"])
    try:
        assert get_log_entry_model() is AuditLogEntry
        assert get_context_model() is AuditLogContext
    finally:
        apps.unset_available_apps()
