"""The pieces of ``python -m tests.django_suite`` that run without Django's test suite."""

import pytest
from django.apps import apps
from django.db import connection, models
from django.db.migrations.state import ModelState, ProjectState

from audit_log.fields import AuditLogsField
from tests.django_suite import results
from tests.django_suite.audit_everything import schema
from tests.testapp.models import AuditLogContext, AuditLogEntry, Customer, NotAudited

TRACEBACK = """Traceback (most recent call last):
  File "/x/django/db/backends/utils.py", line 105, in _execute
    return self.cursor.execute(sql)
psycopg2.errors.UndefinedTable: relation "a" does not exist

The above exception was the direct cause of the following exception:

Traceback (most recent call last):
  File "/x/tests/schema/tests.py", line 10, in test_it
    editor.create_model(Thing)
  File "/x/audit_log/triggers.py", line 20, in install
    schema_editor.execute(statement)
  File "/x/django/db/backends/utils.py", line 105, in _execute
    return self.cursor.execute(sql)
           ^^^^^^^^^^^^^^^^^^^^^^^^
django.db.utils.ProgrammingError: relation "a" does not exist
LINE 1: SELECT 1 FROM a
"""


def test_results_compare_lists_changed_and_missing_tests():
    stock = {"a.T.test_1": {"outcome": "ok"}, "a.T.test_2": {"outcome": "ok"}, "a.T.test_3": {"outcome": "skipped"}}
    audited = {
        "a.T.test_1": {"outcome": "ok"},
        "a.T.test_3": {"outcome": "ERROR", "detail": TRACEBACK},
        "setUpClass (a.U)": {"outcome": "ERROR", "detail": TRACEBACK},
    }

    differences = results.compare(stock, audited)

    assert [(d.test, d.stock, d.audited) for d in differences] == [
        ("a.T.test_2", "ok", results.NOT_RUN),
        ("a.T.test_3", "skipped", "ERROR"),
        ("setUpClass (a.U)", results.NOT_RUN, "ERROR"),
    ]


def test_results_excerpt_shows_audit_log_frame_and_final_exception():
    shown = results.excerpt(TRACEBACK)

    assert shown.where == "/x/audit_log/triggers.py:20 in install"
    assert shown.exception == [
        'django.db.utils.ProgrammingError: relation "a" does not exist',
        "LINE 1: SELECT 1 FROM a",
    ]


def test_results_report_groups_tests_by_cause():
    other = TRACEBACK.replace('"a"', '"b"')
    differences = [
        results.Difference("a.T.test_1", "ok", "ERROR", TRACEBACK),
        results.Difference("a.T.test_2", "ok", "ERROR", other),
        results.Difference("a.T.test_3", "ok", "FAIL", "AssertionError: 1 != 2"),
    ]

    lines = results.report(differences)

    assert lines[0] == "\n2 x django.db.utils.ProgrammingError: relation '…' does not exist"
    assert "\n1 x AssertionError: N != N" in lines


def test_audit_everything_audits_every_table_but_the_log():
    editor = schema.DatabaseSchemaEditor(connection)

    assert editor.audit_options(AuditLogEntry) is None
    assert editor.audit_options(AuditLogContext) is None  # unmanaged: no table
    assert editor.audit_options(Customer).exclude == ("last_seen",)  # its own options
    assert isinstance(editor.audit_options(NotAudited), AuditLogsField)


@pytest.mark.django_db
def test_audit_everything_installs_triggers_under_a_narrowed_registry():
    state = ProjectState()
    state.add_model(
        ModelState("suitetest", "Thing", [("id", models.AutoField(primary_key=True)), ("name", models.TextField())])
    )
    thing = state.apps.get_model("suitetest", "Thing")
    # As TransactionTestCase.available_apps does in Django's own tests.
    apps.set_available_apps(["django.contrib.contenttypes"])
    try:
        with schema.DatabaseSchemaEditor(connection) as editor:
            editor.create_model(thing)
    finally:
        apps.unset_available_apps()
    with connection.cursor() as cursor:
        cursor.execute("INSERT INTO suitetest_thing (name) VALUES ('x')")
        cursor.execute("SELECT action FROM testapp_auditlogentry WHERE table_name = 'suitetest_thing'")
        assert cursor.fetchall() == [("INSERT",)]
