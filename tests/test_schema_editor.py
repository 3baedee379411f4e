"""The schema editor keeps triggers in step with migrations, in both directions."""

import io
import json

import pytest
from django.apps import apps
from django.core.management import call_command
from django.db import connection, migrations, models
from django.db.migrations.state import ProjectState

from audit_log import sql
from audit_log.fields import AuditLogsField
from tests.skips import require_migrations

pytestmark = pytest.mark.django_db

APP = "schematest"


def triggers_on(table):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT t.tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
            "WHERE c.relname = %s AND NOT t.tgisinternal",
            [table],
        )
        return {row[0] for row in cursor.fetchall()}


def function_exists(table):
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_proc WHERE proname = %s", [sql.function_name(table)])
        return cursor.fetchone()[0] == 1


def run(sql_text, params=None):
    with connection.cursor() as cursor:
        cursor.execute(sql_text, params)
        return cursor.fetchall() if cursor.description else None


def logged(table):
    """(action, changes) of the entries of ``table``, oldest first."""
    return [
        (action, json.loads(changes) if isinstance(changes, str) else changes)
        for action, changes in run(
            "SELECT action, changes FROM testapp_auditlogentry WHERE table_name = %s ORDER BY id", [table]
        )
    ]


class Migrator:
    """Applies migration operations to a project state and the test database."""

    def __init__(self):
        self.state = ProjectState.from_apps(apps)
        self.editor_class = None  # the connection's own schema editor

    def editor(self):
        return self.editor_class(connection) if self.editor_class else connection.schema_editor()

    def forwards(self, *operations, app_label=APP):
        for operation in operations:
            new_state = self.state.clone()
            operation.state_forwards(app_label, new_state)
            with self.editor() as editor:
                operation.database_forwards(app_label, editor, self.state, new_state)
            self.state = new_state

    def backwards(self, operation, before, app_label=APP):
        with self.editor() as editor:
            operation.database_backwards(app_label, editor, self.state, before)
        self.state = before


def create_audited(name="Thing", table=None, **extra_fields):
    fields = [
        ("id", models.AutoField(primary_key=True)),
        ("name", models.CharField(max_length=50)),
        *extra_fields.items(),
        ("audit_logs", AuditLogsField(to="testapp.auditlogentry")),
    ]
    options = {"db_table": table} if table else {}
    return migrations.CreateModel(name, fields, options=options)


@pytest.fixture
def migrator():
    return Migrator()


def test_create_model_installs_triggers_and_delete_model_removes_them(migrator):
    migrator.forwards(create_audited())
    assert triggers_on("schematest_thing") == set(sql.TRIGGER_NAMES.values())
    run("INSERT INTO schematest_thing (name) VALUES ('a')")
    assert logged("schematest_thing") == [("INSERT", {"id": 1, "name": "a"})]
    migrator.forwards(migrations.DeleteModel("Thing"))
    assert not function_exists("schematest_thing")


def test_unaudited_models_get_no_triggers(migrator):
    migrator.forwards(migrations.CreateModel("Plain", [("id", models.AutoField(primary_key=True))]))
    assert triggers_on("schematest_plain") == set()


def test_added_column_is_logged(migrator):
    migrator.forwards(
        create_audited(), migrations.AddField("Thing", "colour", models.CharField(max_length=9, default="red"))
    )
    run("INSERT INTO schematest_thing (name, colour) VALUES ('a', 'red')")
    run("UPDATE schematest_thing SET colour = 'blue'")
    assert logged("schematest_thing")[-1] == ("UPDATE", {"colour": ["red", "blue"]})


def test_removed_column_leaves_working_triggers(migrator):
    migrator.forwards(create_audited(colour=models.CharField(max_length=9, default="red")))
    run("INSERT INTO schematest_thing (name, colour) VALUES ('a', 'red')")
    migrator.forwards(migrations.RemoveField("Thing", "colour"))
    run("UPDATE schematest_thing SET name = 'b'")
    run("DELETE FROM schematest_thing")
    assert logged("schematest_thing")[1:] == [("UPDATE", {"name": ["a", "b"]}), ("DELETE", {"id": 1, "name": "b"})]


def test_renamed_column_is_logged_under_its_new_name(migrator):
    migrator.forwards(create_audited(), migrations.RenameField("Thing", "name", "title"))
    run("INSERT INTO schematest_thing (title) VALUES ('a')")
    run("UPDATE schematest_thing SET title = 'b'")
    assert logged("schematest_thing") == [("INSERT", {"id": 1, "title": "a"}), ("UPDATE", {"title": ["a", "b"]})]


def test_altered_column_type_keeps_triggers_working(migrator):
    migrator.forwards(create_audited(size=models.CharField(max_length=20, default="{}")))
    migrator.forwards(migrations.AlterField("Thing", "size", models.JSONField(default=dict)))
    run("""INSERT INTO schematest_thing (name, size) VALUES ('a', '{"w": 1}')""")
    run("""UPDATE schematest_thing SET size = '{"w": 2}'""")
    assert logged("schematest_thing")[-1] == ("UPDATE", {"size": [{"w": 1}, {"w": 2}]})


def test_renamed_table_moves_its_triggers(migrator):
    migrator.forwards(create_audited(), migrations.AlterModelTable("Thing", "Renamed Thing-Tbl"))
    assert not function_exists("schematest_thing")
    assert triggers_on("Renamed Thing-Tbl") == set(sql.TRIGGER_NAMES.values())
    run("INSERT INTO \"Renamed Thing-Tbl\" (name) VALUES ('a')")
    assert logged("Renamed Thing-Tbl") == [("INSERT", {"id": 1, "name": "a"})]


def test_renamed_model_logs_under_the_new_content_type(migrator):
    migrator.forwards(create_audited(table="fixed_thing"), migrations.RenameModel("Thing", "Gadget"))
    run("INSERT INTO fixed_thing (name) VALUES ('a')")
    [(app_label, model)] = run(
        "SELECT ct.app_label, ct.model FROM testapp_auditlogentry e "
        "JOIN django_content_type ct ON ct.id = e.content_type_id WHERE e.table_name = 'fixed_thing'"
    )
    assert (app_label, model) == (APP, "gadget")


def test_adding_the_audit_field_turns_auditing_on_and_removing_it_off(migrator):
    migrator.forwards(
        migrations.CreateModel(
            "Thing", [("id", models.AutoField(primary_key=True)), ("name", models.CharField(max_length=50))]
        )
    )
    run("INSERT INTO schematest_thing (name) VALUES ('before')")
    add = migrations.AddField("Thing", "audit_logs", AuditLogsField(to="testapp.auditlogentry"))
    before = migrator.state
    migrator.forwards(add)
    run("INSERT INTO schematest_thing (name) VALUES ('audited')")
    migrator.backwards(add, before)
    assert triggers_on("schematest_thing") == set()
    run("INSERT INTO schematest_thing (name) VALUES ('after')")
    assert [changes["name"] for _, changes in logged("schematest_thing")] == ["audited"]
    migrator.forwards(add, migrations.RemoveField("Thing", "audit_logs"))
    assert triggers_on("schematest_thing") == set()
    assert not function_exists("schematest_thing")


def test_changing_excluded_fields_takes_effect(migrator):
    migrator.forwards(
        create_audited(secret=models.CharField(max_length=9, default="")),
        migrations.AlterField(
            "Thing", "audit_logs", AuditLogsField(to="testapp.auditlogentry", exclude=["secret"], mask=["name"])
        ),
    )
    run("INSERT INTO schematest_thing (name, secret) VALUES ('a', 's')")
    run("UPDATE schematest_thing SET secret = 't'")
    assert logged("schematest_thing") == [("INSERT", {"id": 1, "name": "**masked**"})]


def test_multi_table_child_is_audited_with_its_parent(migrator):
    migrator.forwards(
        migrations.CreateModel("Parent", [("id", models.AutoField(primary_key=True))]),
        migrations.CreateModel(
            "Child",
            [
                (
                    "parent_ptr",
                    models.OneToOneField("schematest.parent", models.CASCADE, parent_link=True, primary_key=True),
                ),
                ("extra", models.IntegerField(default=0)),
            ],
            bases=("schematest.parent",),
        ),
        migrations.AddField("Parent", "audit_logs", AuditLogsField(to="testapp.auditlogentry")),
    )
    assert triggers_on("schematest_child") == set(sql.TRIGGER_NAMES.values())


def test_log_table_changes_refresh_every_audited_trigger(migrator):
    # The context model's "tenant" is copied into the log. Dropping it from the
    # log table must regenerate the triggers, or every audited write would fail.
    migrator.forwards(create_audited())
    migrator.forwards(migrations.RemoveField("AuditLogEntry", "tenant"), app_label="testapp")
    run("INSERT INTO schematest_thing (name) VALUES ('a')")
    run("INSERT INTO testapp_invoice (number, status, amount, notes) VALUES ('x', 'draft', 0, '')")
    assert len(logged("schematest_thing")) == 1
    migrator.forwards(
        migrations.AddField("AuditLogEntry", "tenant", models.CharField(max_length=50, blank=True, default="")),
        app_label="testapp",
    )
    from audit_log.context import audit_context

    with audit_context("test", tenant="acme"):
        run("INSERT INTO schematest_thing (name) VALUES ('b')")
    assert run("SELECT tenant FROM testapp_auditlogentry WHERE table_name = 'schematest_thing' ORDER BY id") == [
        ("",),
        ("acme",),
    ]


def test_sqlmigrate_shows_the_trigger_sql():
    require_migrations()
    out = io.StringIO()
    call_command("sqlmigrate", "testapp", "0001", stdout=out)
    text = out.getvalue()
    assert 'CREATE OR REPLACE FUNCTION "audit_log_fn_testapp_invoice"() RETURNS trigger' in text
    assert 'CREATE OR REPLACE TRIGGER "audit_log_update" AFTER UPDATE ON "Weird Name-Tbl"' in text
