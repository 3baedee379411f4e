"""The log table's own protection: append-only, maintenance recorded, retention through its owner.

Three things are installed on the log table, beside the audited tables'
triggers:

* a guard, ``BEFORE UPDATE OR DELETE``, that refuses both unless the
  transaction has set ``audit_log.maintenance`` to ``on``. ``TRUNCATE`` is left
  to privileges: Django's test runner and ``flush`` empty every table with it,
  and the application's role should not have it (``audit_log_grants``);
* a record of every change that gets through: one entry per statement,
  ``{"entries": N, "first_id", "last_id", "first_at", "last_at"}``, with the
  context of the session that made it;
* the retention function, ``SECURITY DEFINER`` like the triggers and
  executable by the log's owner only, which deletes entries older than a
  moment in batches (``manage.py audit_log_retention``).

Like the trigger functions, these are written by the schema editor (when the
log table is created or changes) and by ``audit_log_install``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.models import Model

from . import sql, triggers
from .fields import AuditLogsField

#: Set it to ``on`` (``SET LOCAL``) to let UPDATE and DELETE reach the log table.
MAINTENANCE_SETTING = "audit_log.maintenance"

#: The context type of retention's deletions (and of the entries recording them).
RETENTION = "retention"

#: The guard's function (shared by every log table) and the log table's triggers.
GUARD_FUNCTION = "audit_log_guard"
GUARD_TRIGGER = "audit_log_guard"
RECORD_TRIGGERS = {"DELETE": "audit_log_maintenance_delete", "UPDATE": "audit_log_maintenance_update"}

_BODY_TAG = "$audit_log$"


@dataclass(frozen=True)
class LogSpec:
    """The log table seen as a table whose maintenance is recorded into itself."""

    spec: sql.AuditSpec

    @property
    def table(self) -> str:
        """The log table."""
        return self.spec.table

    @property
    def retention_function(self) -> str:
        """SQL naming the retention function (see :func:`retention_reference`)."""
        return retention_reference(self.table)


def retention_reference(table: str) -> str:
    """Return SQL naming the retention function of the log ``table`` (beside it when it has a schema)."""
    name = sql.quote_ident(sql.object_name("retain", sql.bare_name(table)))
    schema = sql.function_schema(table)
    return f"{sql.quote_ident(schema)}.{name}" if schema else name


def log_spec(log_model: type[Model], connection: BaseDatabaseWrapper, **options: Any) -> LogSpec:
    """Describe the log table of ``log_model`` for its guard, record and retention function."""
    return LogSpec(triggers.spec_for(log_model, connection, audit=AuditLogsField(to=log_model), **options))


def guard_function(search_path: tuple[str, ...]) -> str:
    """Return the shared guard function: refuse UPDATE and DELETE outside maintenance."""
    hint = (
        "The audit log is append-only. Delete old entries with manage.py audit_log_retention; for other "
        "maintenance, as the log's owner, SET LOCAL audit_log.maintenance = 'on' in that transaction "
        "(the change is recorded in the log)."
    )
    body = f"""
BEGIN
  IF current_setting({sql.quote_literal(MAINTENANCE_SETTING)}, true) IS DISTINCT FROM 'on' THEN
    RAISE EXCEPTION 'audit_log: % on the audit log % refused', TG_OP, TG_TABLE_NAME
      USING ERRCODE = 'insufficient_privilege', HINT = {sql.quote_literal(hint)};
  END IF;
  RETURN NULL;
END
"""
    return (
        f"CREATE OR REPLACE FUNCTION {sql.quote_ident(GUARD_FUNCTION)}() RETURNS trigger LANGUAGE plpgsql "
        f"{sql.function_attributes(search_path)} AS {_BODY_TAG}{body}{_BODY_TAG}"
    )


def record_body(log: LogSpec) -> str:
    """Return the body of the function that records a maintenance UPDATE or DELETE of the log."""
    spec = log.spec
    declarations, prelude = sql.context_prelude(spec)
    pk, at = sql.quote_ident(spec.pk), sql.quote_ident(spec.log_columns.at)
    values = [  # in the order of sql.insert_columns()
        "_al_ct",
        f"_al_first::text::{spec.object_id_type}",
        "TG_OP",
        "statement_timestamp()",
        "jsonb_build_object('entries', _al_count, 'first_id', _al_first, 'last_id', _al_last, "
        "'first_at', _al_from, 'last_at', _al_to)",
        "_al_txid",
        sql.quote_literal(spec.table),
        *(f"_al_c{index}" for index in range(len(spec.context.columns))),
    ]
    old, new = sql.quote_ident(sql.OLD_ROWS), sql.quote_ident(sql.NEW_ROWS)
    return f"""
DECLARE{declarations}
  _al_count bigint;
  _al_first bigint;
  _al_last bigint;
  _al_from timestamptz;
  _al_to timestamptz;
BEGIN
  IF TG_OP = 'DELETE' THEN
    SELECT count(*), min({pk}), max({pk}), min({at}), max({at}) INTO _al_count, _al_first, _al_last, _al_from, _al_to
    FROM {old};
  ELSE
    SELECT count(*), min({pk}), max({pk}), min({at}), max({at}) INTO _al_count, _al_first, _al_last, _al_from, _al_to
    FROM {new};
  END IF;
  IF _al_count = 0 THEN
    RETURN NULL;
  END IF;{prelude}
  INSERT INTO {sql.quote_name(spec.log_table)} ({sql.insert_columns(spec)})
  VALUES ({", ".join(values)});
  RETURN NULL;
END
"""


def retention_body(log: LogSpec) -> str:
    """Return the body of the retention function: delete one batch of entries older than a moment."""
    spec = log.spec
    table, pk, at = sql.quote_name(spec.table), sql.quote_ident(spec.pk), sql.quote_ident(spec.log_columns.at)
    setting = sql.quote_literal(MAINTENANCE_SETTING)
    return f"""
DECLARE
  _al_deleted bigint;
BEGIN
  PERFORM set_config({setting}, 'on', true);
  DELETE FROM {table} WHERE {pk} IN (
    SELECT {pk} FROM {table} WHERE {at} < p_before ORDER BY {pk} LIMIT p_batch
  );
  GET DIAGNOSTICS _al_deleted = ROW_COUNT;
  PERFORM set_config({setting}, '', true);
  RETURN _al_deleted;
END
"""


def install_statements(log: LogSpec) -> list[str]:
    """Return every statement that installs (or refreshes) the guard, the record and retention."""
    spec = log.spec
    table = sql.quote_name(spec.table)
    record = sql.function_reference(spec.table)
    old, new = sql.quote_ident(sql.OLD_ROWS), sql.quote_ident(sql.NEW_ROWS)
    retention = f"{log.retention_function}(p_before timestamptz, p_batch integer)"
    return [
        sql.create_content_type_function(spec.content_type.table, spec.search_path),
        guard_function(spec.search_path),
        f"CREATE OR REPLACE FUNCTION {record}() RETURNS trigger LANGUAGE plpgsql "
        f"{sql.function_attributes(spec.search_path)} AS {_BODY_TAG}{record_body(log)}{_BODY_TAG}",
        f"CREATE OR REPLACE FUNCTION {retention} RETURNS bigint LANGUAGE plpgsql "
        f"{sql.function_attributes(spec.search_path)} AS {_BODY_TAG}{retention_body(log)}{_BODY_TAG}",
        # Only the owner (and whom it grants) may delete through it.
        f"REVOKE ALL ON FUNCTION {retention} FROM PUBLIC",
        f"CREATE OR REPLACE TRIGGER {sql.quote_ident(GUARD_TRIGGER)} BEFORE UPDATE OR DELETE ON {table} "
        f"FOR EACH STATEMENT EXECUTE FUNCTION {sql.quote_ident(GUARD_FUNCTION)}()",
        f"CREATE OR REPLACE TRIGGER {sql.quote_ident(RECORD_TRIGGERS['DELETE'])} AFTER DELETE ON {table} "
        f"REFERENCING OLD TABLE AS {old} FOR EACH STATEMENT EXECUTE FUNCTION {record}()",
        f"CREATE OR REPLACE TRIGGER {sql.quote_ident(RECORD_TRIGGERS['UPDATE'])} AFTER UPDATE ON {table} "
        f"REFERENCING OLD TABLE AS {old} NEW TABLE AS {new} FOR EACH STATEMENT EXECUTE FUNCTION {record}()",
    ]


def install(schema_editor: BaseDatabaseSchemaEditor, log_model: type[Model], **options: Any) -> None:
    """Install (or refresh) the guard, the maintenance record and the retention function of the log table.

    Args:
        schema_editor: The schema editor of the running migration.
        log_model: The log-entry model (current or historical).
        **options: Passed to ``triggers.spec_for`` (``entry_columns`` ...).
    """
    for statement in install_statements(log_spec(log_model, schema_editor.connection, **options)):
        schema_editor.execute(statement, params=None)


def uninstall(schema_editor: BaseDatabaseSchemaEditor, table: str) -> None:
    """Drop the log table's record and retention functions (its triggers go with the table or rename)."""
    schema_editor.execute(f"DROP FUNCTION IF EXISTS {sql.function_reference(table)}()", params=None)
    schema_editor.execute(f"DROP FUNCTION IF EXISTS {retention_reference(table)}(timestamptz, integer)", params=None)
    for trigger in (GUARD_TRIGGER, *RECORD_TRIGGERS.values()):
        schema_editor.execute(f"DROP TRIGGER IF EXISTS {sql.quote_ident(trigger)} ON {sql.quote_name(table)}")


@contextmanager
def log_maintenance(using: str = DEFAULT_DB_ALIAS) -> Iterator[None]:
    """Let UPDATE and DELETE reach the log table inside the block (a transaction of its own).

    For the log's owner: fixtures and tests that empty the log, a data
    migration that rewrites old entries. Every change that gets through is
    recorded in the log, with the context active at the time. The
    application's role cannot use it: ``audit_log_grants`` leaves it no
    UPDATE or DELETE on the log at all.

    Args:
        using: The database alias.
    """
    with transaction.atomic(using=using), connections[using].cursor() as cursor:
        cursor.execute(maintenance_on())
        yield
        cursor.execute(maintenance_off())


def maintenance_on() -> str:
    """Return the statement that lets UPDATE and DELETE reach the log for the rest of the transaction."""
    return f"SET LOCAL {MAINTENANCE_SETTING} = 'on'"


def maintenance_off() -> str:
    """Return the statement that closes the log to UPDATE and DELETE again."""
    return f"SET LOCAL {MAINTENANCE_SETTING} = ''"


#: Whether the log table has its guard and record triggers, and whether they call our functions.
LOG_TRIGGERS = """
SELECT t.tgname, p.proname, t.tgenabled
FROM pg_trigger AS t JOIN pg_proc AS p ON p.oid = t.tgfoid
WHERE t.tgrelid = to_regclass(%s) AND NOT t.tgisinternal
"""


def status(connection: BaseDatabaseWrapper, log_model: type[Model]) -> triggers.TableStatus:
    """Report whether the log table's guard and maintenance record are installed and enabled."""
    log = log_spec(log_model, connection)
    label = log_model._meta.label
    with connection.cursor() as cursor:
        cursor.execute(LOG_TRIGGERS, [sql.quote_name(log.table)])
        installed = {name: (function, enabled) for name, function, enabled in cursor.fetchall()}
        cursor.execute("SELECT to_regprocedure(%s) IS NOT NULL", [f"{log.retention_function}(timestamptz, integer)"])
        [retention] = cursor.fetchone()
    wanted = {
        GUARD_TRIGGER: GUARD_FUNCTION,
        **{name: sql.function_name(log.table) for name in RECORD_TRIGGERS.values()},
    }
    missing = [name for name in wanted if name not in installed]
    if not retention:
        missing.append("retention function")
    if missing:
        return triggers.TableStatus(log.table, label, "missing", "append-only guard: missing " + ", ".join(missing))
    disabled = [name for name, (_, enabled) in installed.items() if name in wanted and enabled == "D"]
    if disabled:
        return triggers.TableStatus(log.table, label, "disabled", "append-only guard: disabled " + ", ".join(disabled))
    return triggers.TableStatus(log.table, label, "ok", "append-only guard")
