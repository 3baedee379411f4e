"""``audit_log_status`` finds drift; ``audit_log_install`` repairs it."""

import io
import re

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from audit_log import triggers

pytestmark = pytest.mark.django_db


def status():
    out = io.StringIO()
    try:
        call_command("audit_log_status", stdout=out, no_color=True)
    except CommandError as error:
        return error.returncode, out.getvalue(), str(error)
    return 0, out.getvalue(), ""


def run(statement):
    with connection.cursor() as cursor:
        cursor.execute(statement)


def test_every_audited_table_has_current_triggers():
    # Also holds under `pytest --no-migrations`, where tables come from syncdb.
    results = triggers.status(connection)
    assert {result.table for result in results} >= {"testapp_invoice", "Weird Name-Tbl", "testapp_uuidthing"}
    assert [result for result in results if not result.ok] == []
    assert "testapp_notaudited" not in {result.table for result in results}


def test_status_command_lists_tables_and_exits_zero_when_current():
    code, out, _ = status()
    assert code == 0
    assert "testapp_invoice" in out
    assert "ok" in out


@pytest.mark.parametrize(
    ("damage", "state"),
    [
        ('DROP TRIGGER "audit_log_update" ON testapp_invoice', "missing"),
        ('ALTER TABLE testapp_invoice DISABLE TRIGGER "audit_log_delete"', "disabled"),
        ('DROP FUNCTION "audit_log_fn_testapp_invoice"() CASCADE', "missing"),
        ('ALTER FUNCTION "audit_log_fn_testapp_invoice"() RESET jit', "outdated"),
    ],
)
def test_status_command_exits_one_on_drift_and_install_repairs_it(damage, state):
    run(damage)
    code, out, error = status()
    assert code == 1
    assert re.search(rf"testapp_invoice\s+{state}", out)
    assert "audit_log_install" in error
    call_command("audit_log_install", stdout=io.StringIO())
    assert status()[0] == 0


def test_outdated_function_body_is_drift():
    run(
        'CREATE OR REPLACE FUNCTION "audit_log_fn_testapp_invoice"() RETURNS trigger LANGUAGE plpgsql '
        "AS $$ BEGIN RETURN NULL; END $$"
    )
    code, out, _ = status()
    assert code == 1
    assert "function body differs" in out


def test_orphaned_triggers_are_drift_and_install_prune_removes_them():
    run("CREATE TABLE leftover (id int)")
    run(
        'CREATE TRIGGER "audit_log_insert" AFTER INSERT ON leftover '
        'FOR EACH STATEMENT EXECUTE FUNCTION "audit_log_fn_testapp_invoice"()'
    )
    code, out, _ = status()
    assert code == 1
    assert re.search(r'"public"\."leftover"\s+orphaned', out)
    call_command("audit_log_install", prune=True, stdout=io.StringIO())
    assert status()[0] == 0
