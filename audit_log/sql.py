"""Every SQL statement the audit log runs, as pure functions of names and options.

Nothing here touches a model or a connection: callers describe a table with
:class:`AuditSpec` and get SQL text back. Every identifier goes through
:func:`quote_ident` and every string constant through :func:`quote_literal`, so
table and column names with capitals, spaces, hyphens or embedded quotes are
safe.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass

#: Longest identifier PostgreSQL keeps (NAMEDATALEN - 1), in bytes.
MAX_IDENTIFIER_BYTES = 63

#: What a masked column's value is replaced with in ``changes``.
MASKED_VALUE = "**masked**"

#: ``context_type`` of changes made without any audit context.
UNKNOWN_CONTEXT_TYPE = "unknown"

#: Name prefix of every PostgreSQL object this package creates.
PREFIX = "audit_log_"

#: Names of the four triggers; trigger names are scoped per table, so they are fixed.
TRIGGER_NAMES: dict[str, str] = {
    "INSERT": "audit_log_insert",
    "UPDATE": "audit_log_update",
    "DELETE": "audit_log_delete",
    "TRUNCATE": "audit_log_truncate",
}

#: Names of the transition tables inside the trigger function.
OLD_ROWS = "audit_log_old"
NEW_ROWS = "audit_log_new"

#: The transaction-local setting that carries the context to the triggers: a
#: JSON object of the context model's columns, set by ``SET LOCAL`` in the same
#: round trip as each write (see :func:`set_context`). PostgreSQL itself ends
#: it with the transaction, or with the savepoint it was set in.
CONTEXT_SETTING = "audit_log.context"

#: Planner settings pinned on every trigger function (see function_attributes()
#: for the rest). The planner cannot
#: estimate transition tables: with JIT on, the
#: trigger's INSERT ... SELECT crossed ``jit_above_cost`` and spent ~250 ms
#: compiling per statement; and plpgsql caches the old/new pairing join as
#: planned for the first call (often one row, so a nested loop), which made a
#: later 10,000-row UPDATE quadratic. A hash join is linear whatever the size.
FUNCTION_SETTINGS: tuple[tuple[str, str], ...] = (
    ("jit", "off"),
    ("enable_nestloop", "off"),
    ("enable_mergejoin", "off"),
)

_BODY_TAG = "$audit_log$"

# PostgreSQL types without a default equality operator: IS DISTINCT FROM fails
# on them, so the trigger compares their text forms instead.
TYPES_WITHOUT_EQUALITY = frozenset({"json", "xml", "point", "line", "lseg", "box", "path", "polygon", "circle"})


def quote_ident(name: str) -> str:
    """Quote ``name`` as a PostgreSQL identifier, doubling embedded quotes.

    Args:
        name: A table, column, function or trigger name.

    Returns:
        The name in double quotes, safe to paste into SQL.

    Raises:
        ValueError: If the name is empty or contains a NUL character.
    """
    if not name or "\x00" in name:
        raise ValueError(f"Invalid PostgreSQL identifier: {name!r}")
    return '"' + name.replace('"', '""') + '"'


_QUOTED_PART = re.compile(r'"((?:[^"]|"")*)"')


def name_parts(name: str) -> tuple[str, ...]:
    """Split a table or column name, as Django spells it, into the identifiers it stands for.

    Django's ``quote_name`` leaves a name that starts and ends with a double
    quote alone: it is SQL already, such as ``'"otherschema"."book"'`` (a
    schema-qualified table) or ``'"quoted_id"'``. Such a name is parsed into
    its quoted parts. Any other name is one identifier, whatever it contains
    (``"my.table"`` is a table with a dot in its name, as Django treats it).

    Args:
        name: A ``db_table`` or ``db_column``.

    Returns:
        The identifiers, unquoted: ``("otherschema", "book")``, ``("quoted_id",)``.
    """
    if len(name) >= 2 and name[0] == '"' and name[-1] == '"':
        parts = []
        position = 0
        while match := _QUOTED_PART.match(name, position):
            parts.append(match.group(1).replace('""', '"'))
            position = match.end()
            if position == len(name):
                return tuple(parts)
            if name[position] != ".":
                break
            position += 1
    return (name,)


def quote_name(name: str) -> str:
    """Quote a table or column name as Django spells it: each part of a qualified name once.

    Args:
        name: A ``db_table`` or ``db_column`` (see :func:`name_parts`).

    Returns:
        SQL that names it, safe to paste into a statement.
    """
    return ".".join(quote_ident(part) for part in name_parts(name))


def bare_name(name: str) -> str:
    """Return the object's own name, without schema or quotes: ``'"s"."book"'`` gives ``book``."""
    return name_parts(name)[-1]


def quote_literal(value: str) -> str:
    """Quote ``value`` as a PostgreSQL string constant.

    Backslashes switch to an escape-string constant, so the result means the
    same whatever ``standard_conforming_strings`` is set to.

    Args:
        value: Any text.

    Returns:
        A string constant, safe to paste into SQL.

    Raises:
        ValueError: If the text contains a NUL character.
    """
    if "\x00" in value:
        raise ValueError("PostgreSQL text cannot contain NUL characters")
    quoted = "'" + value.replace("'", "''") + "'"
    if "\\" in value:
        return "E" + quoted.replace("\\", "\\\\")
    return quoted


def object_name(*parts: str) -> str:
    """Return a deterministic ``audit_log_...`` name of at most 63 bytes.

    Too long a name is cut and ends in a hash of the full name, so two long
    names that share a prefix still differ, and the same input always gives the
    same name (checks and uninstalls find what installs made).

    Args:
        parts: Name parts, joined with ``_`` after the prefix.

    Returns:
        The object name, unquoted.
    """
    name = PREFIX + "_".join(parts)
    encoded = name.encode()
    if len(encoded) <= MAX_IDENTIFIER_BYTES:
        return name
    digest = hashlib.md5(encoded, usedforsecurity=False).hexdigest()[:8]
    head = encoded[: MAX_IDENTIFIER_BYTES - len(digest) - 1].decode(errors="ignore")
    return f"{head}_{digest}"


def function_name(table: str) -> str:
    """Return the (unqualified) name of the trigger function of ``table``."""
    return object_name("fn", bare_name(table))


def function_schema(table: str) -> str | None:
    """Return the schema the trigger function of ``table`` lives in when the table names one, else None.

    A schema-qualified table's function is created beside it; any other goes
    where ``CREATE FUNCTION`` puts it, the first schema of the search path.
    """
    parts = name_parts(table)
    return parts[-2] if len(parts) > 1 else None


def function_reference(table: str) -> str:
    """Return SQL naming the trigger function of ``table`` (qualified when the table is)."""
    schema = function_schema(table)
    function = quote_ident(function_name(table))
    return f"{quote_ident(schema)}.{function}" if schema else function


#: The helper that creates missing content types (shared by all tables; no
#: table function is named like it, since those all start ``audit_log_fn_``).
CONTENT_TYPE_FUNCTION = "audit_log_content_type"


@dataclass(frozen=True)
class Column:
    """One column of an audited table.

    Attributes:
        name: The column name.
        comparable: False for types without an equality operator; those are
            compared through their text form.
        masked: True if the log keeps only whether the value was set, never
            the value.
    """

    name: str
    comparable: bool = True
    masked: bool = False


@dataclass(frozen=True)
class LogColumns:
    """Column names of the log-entry table, by role."""

    content_type: str = "content_type_id"
    object_id: str = "object_id"
    action: str = "action"
    at: str = "at"
    changes: str = "changes"
    transaction_id: str = "transaction_id"
    table_name: str = "table_name"


@dataclass(frozen=True)
class ContentTypeTable:
    """Where the trigger finds (and if need be creates) the content type of its table."""

    table: str
    app_label: str
    model: str


@dataclass(frozen=True)
class ContextColumns:
    """The context columns the trigger reads from :data:`CONTEXT_SETTING` and copies into the log.

    Attributes:
        columns: ``(column, SQL type)`` pairs, in order: the record the
            setting's JSON object is read as.
        fallbacks: SQL constants for columns left NULL (no context, or a
            context that did not set them), by column; columns not listed stay NULL.
        context_type: Which of them holds the context type.
        context: Which of them holds the JSON context.
    """

    columns: tuple[tuple[str, str], ...]
    fallbacks: tuple[tuple[str, str], ...] = ()
    context_type: str = "context_type"
    context: str = "context"


@dataclass(frozen=True)
class AuditSpec:
    """Everything needed to write the triggers of one table.

    Attributes:
        table: The audited table.
        pk: Its primary-key column.
        columns: Columns whose values are logged (excluded columns left out).
        excluded: Columns left out of the log entirely.
        log_table: The log-entry table.
        log_columns: Column names of the log-entry table.
        object_id_type: SQL type of the log's object-id column.
        content_type: Content-type lookup for this table's model.
        context: The context columns copied into every entry.
        require_context: Refuse writes made without an audit context.
        search_path: The schemas the function's names resolve in (the
            migrating session's), pinned with ``pg_temp`` last.
        object_id_column: The column whose value is logged as the object id,
            when it is not ``pk``: an auto-created many-to-many table logs
            its rows under the model that declares the field, by its key to
            that model (``content_type`` is that model's too).
    """

    table: str
    pk: str
    columns: tuple[Column, ...]
    excluded: tuple[str, ...]
    log_table: str
    log_columns: LogColumns
    object_id_type: str
    content_type: ContentTypeTable
    context: ContextColumns
    require_context: bool = False
    search_path: tuple[str, ...] = ("public",)
    object_id_column: str | None = None

    @property
    def function(self) -> str:
        """Name of this table's trigger function."""
        return function_name(self.table)

    @property
    def object_key(self) -> str:
        """The column whose value an entry records as ``object_id``."""
        return self.object_id_column or self.pk


def _unique_alias(base: str, taken: Iterable[str]) -> str:
    taken_set = set(taken)
    alias, n = base, 0
    while alias in taken_set:
        n += 1
        alias = f"{base}{n}"
    return alias


def _masked(expression: str) -> str:
    return f"CASE WHEN {expression} IS NULL THEN NULL ELSE {quote_literal(MASKED_VALUE)} END"


def _snapshot(spec: AuditSpec, alias: str) -> str:
    """JSON of a whole row: excluded columns removed, masked ones hidden."""
    expression = f"to_jsonb({alias}.*)"
    if spec.excluded:
        names = ", ".join(quote_literal(name) for name in spec.excluded)
        expression = f"({expression} - ARRAY[{names}]::text[])"
    masked = [column for column in spec.columns if column.masked]
    if masked:
        pairs = ", ".join(
            f"{quote_literal(column.name)}, {_masked(f'{alias}.{quote_ident(column.name)}')}" for column in masked
        )
        expression = f"({expression} || jsonb_build_object({pairs}))"
    return expression


def _diff(spec: AuditSpec, old: str, new: str) -> str:
    """JSON ``{column: [old, new]}`` of the changed columns of one row pair."""
    parts = []
    for column in spec.columns:
        before = f"{old}.{quote_ident(column.name)}"
        after = f"{new}.{quote_ident(column.name)}"
        if column.comparable:
            changed = f"{before} IS DISTINCT FROM {after}"
        else:
            changed = f"{before}::text IS DISTINCT FROM {after}::text"
        if column.masked:
            before, after = _masked(before), _masked(after)
        pair = f"jsonb_build_object({quote_literal(column.name)}, jsonb_build_array({before}, {after}))"
        parts.append(f"(CASE WHEN {changed} THEN {pair} ELSE '{{}}'::jsonb END)")
    if not parts:
        return "'{}'::jsonb"
    return "\n        || ".join(parts)


def insert_columns(spec: AuditSpec) -> str:
    """Return the quoted list of the log columns an entry fills, in the order the values come."""
    log = spec.log_columns
    names = [
        log.content_type,
        log.object_id,
        log.action,
        log.at,
        log.changes,
        log.transaction_id,
        log.table_name,
        *(name for name, _ in spec.context.columns),
    ]
    return ", ".join(quote_ident(name) for name in names)


def _unknown_context() -> str:
    # Who wrote without a context: enough to find the session or program.
    return (
        "jsonb_build_object('db_user', session_user::text, 'current_user', current_user::text, "
        "'application_name', current_setting('application_name'), "
        "'client_addr', inet_client_addr()::text, 'backend_pid', pg_backend_pid())"
    )


def _variable(index: int) -> str:
    # Positional names cannot clash with a column name in the queries below.
    return f"_al_c{index}"


def _select(spec: AuditSpec, *, object_id: str, action: str, changes: str) -> str:
    values = [
        "_al_ct",
        f"{object_id}::{spec.object_id_type}",
        quote_literal(action),
        "statement_timestamp()",
        changes,
        "_al_txid",
        quote_literal(spec.table),
        *(_variable(i) for i in range(len(spec.context.columns))),
    ]
    return "SELECT " + ", ".join(values)


def _require(spec: AuditSpec, rows: str) -> str:
    if not spec.require_context:
        return ""
    hint = (
        "Make the change inside audit_log.context.audit_context(...), in a request that passes "
        "through audit_log.middleware.RequestContextMiddleware or in an AuditLoggedCommand; "
        "or set AUDIT_LOG_REQUIRE_CONTEXT = False and run manage.py audit_log_install."
    )
    table = quote_literal(quote_name(spec.table))
    return f"""
    IF _al_missing AND EXISTS (SELECT FROM {rows}) THEN
      RAISE EXCEPTION 'audit_log: % on table % without an audit context', TG_OP, {table}
        USING HINT = {quote_literal(hint)};
    END IF;"""


def context_prelude(spec: AuditSpec) -> tuple[str, str]:
    """Return the declarations and statements that read the context and the content type.

    After them, ``_al_txid``, ``_al_ct`` and one ``_al_cN`` variable per
    context column hold what an entry records, with ``"unknown"`` and the
    session's identity when no context is set (``_al_missing`` says so).
    Shared by the audited tables' functions and the log's own maintenance
    record (``audit_log.guard``).

    Args:
        spec: The table whose writes are recorded.

    Returns:
        ``(declarations, statements)``, plpgsql text.
    """
    context = spec.context
    names = [name for name, _ in context.columns]
    type_var = _variable(names.index(context.context_type))
    json_var = _variable(names.index(context.context))
    declarations = "".join(f"\n  {_variable(i)} {sql_type};" for i, (_, sql_type) in enumerate(context.columns))
    variables = ", ".join(_variable(i) for i in range(len(names)))
    columns = ", ".join(f"_al_ctx.{quote_ident(name)}" for name in names)
    record = ", ".join(f"{quote_ident(name)} {sql_type}" for name, sql_type in context.columns)
    fallbacks = "".join(
        f"\n  {_variable(names.index(name))} := coalesce({_variable(names.index(name))}, {constant});"
        for name, constant in context.fallbacks
        if name in names
    )
    ct = spec.content_type
    ct_lookup = (
        f'SELECT "id" FROM {quote_name(ct.table)} '
        f'WHERE "app_label" = {quote_literal(ct.app_label)} AND "model" = {quote_literal(ct.model)}'
    )
    ct_create = f"{quote_ident(CONTENT_TYPE_FUNCTION)}({quote_literal(ct.app_label)}, {quote_literal(ct.model)})"
    declare = f"""
  _al_txid bigint := txid_current();
  _al_ct integer;
  -- NULL when no session ever set it, '' once the transaction that set it ended.
  _al_raw text := current_setting({quote_literal(CONTEXT_SETTING)}, true);
  _al_missing boolean;{declarations}"""
    statements = f"""
  IF _al_raw <> '' THEN
    -- One query reads the context and the content type.
    SELECT {columns}, ({ct_lookup}) INTO {variables}, _al_ct
    FROM jsonb_to_record(_al_raw::jsonb) AS _al_ctx({record});
  ELSE
    _al_ct := ({ct_lookup});
  END IF;
  IF _al_ct IS NULL THEN
    -- Content types may not exist yet: data migrations run before post_migrate.
    _al_ct := {ct_create};
  END IF;
  _al_missing := {type_var} IS NULL;
  IF _al_missing THEN
    {type_var} := {quote_literal(UNKNOWN_CONTEXT_TYPE)};
    {json_var} := {_unknown_context()};
  END IF;{fallbacks}"""
    return declare, statements


def function_body(spec: AuditSpec) -> str:
    """Return the plpgsql body of the trigger function for ``spec``.

    One statement-level function serves all four triggers of the table. A
    call reads the context (the JSON object in :data:`CONTEXT_SETTING`) and
    the content type in one query, then logs
    the whole statement with a single ``INSERT ... SELECT`` over the
    transition table(s): two queries for one row or for 10,000. Each row is
    logged under the value of ``spec.object_key``: its primary key, or for an
    auto-created many-to-many table its key to the model declaring the field.

    Args:
        spec: The audited table.

    Returns:
        The function body, exactly as ``pg_proc.prosrc`` stores it.
    """
    declarations, prelude = context_prelude(spec)
    qtable = quote_name(spec.table)
    # The row's own key, or for a many-to-many table its key to the declaring model.
    key = quote_ident(spec.object_key)
    insert = f"INSERT INTO {quote_name(spec.log_table)} ({insert_columns(spec)})"
    new_rows, old_rows = quote_ident(NEW_ROWS), quote_ident(OLD_ROWS)
    rn = _unique_alias("_al_rn", (column.name for column in spec.columns))

    def log_rows(action: str, rows: str, alias: str) -> str:
        select = _select(spec, object_id=f"{alias}.{key}", action=action, changes=_snapshot(spec, alias))
        return f"{insert}\n    {select}\n    FROM {rows} AS {alias};"

    select_update = _select(spec, object_id="_al_d.object_id", action="UPDATE", changes="_al_d.changes")
    body = f"""
DECLARE{declarations}
BEGIN{prelude}
  IF TG_OP = 'INSERT' THEN{_require(spec, new_rows)}
    {log_rows("INSERT", new_rows, "_al_n")}
  ELSIF TG_OP = 'UPDATE' THEN{_require(spec, new_rows)}
    -- Old and new transition rows are stored pairwise in the same order, so
    -- they are paired by position: right even when a primary key changes.
    -- OFFSET 0 keeps the diff from being computed twice (filter and select).
    {insert}
    {select_update}
    FROM (
      SELECT _al_n.{key} AS object_id,
        {_diff(spec, "_al_o", "_al_n")} AS changes
      FROM (SELECT row_number() OVER () AS {rn}, * FROM {old_rows}) AS _al_o
      JOIN (SELECT row_number() OVER () AS {rn}, * FROM {new_rows}) AS _al_n ON _al_o.{rn} = _al_n.{rn}
      OFFSET 0
    ) AS _al_d
    WHERE _al_d.changes <> '{{}}'::jsonb;
  ELSIF TG_OP = 'DELETE' THEN{_require(spec, old_rows)}
    {log_rows("DELETE", old_rows, "_al_o")}
  ELSIF TG_OP = 'TRUNCATE' THEN{_require(spec, qtable)}
    -- TRUNCATE fires no row triggers: log every row it is about to remove.
    {log_rows("DELETE", qtable, "_al_o")}
  END IF;
  RETURN NULL;
END
"""
    if _BODY_TAG in body:
        raise ValueError(f"A name of table {spec.table!r} contains {_BODY_TAG}, which cannot be quoted safely")
    return body


def function_attributes(search_path: Iterable[str], settings: Iterable[tuple[str, str]] = ()) -> str:
    """Return the attributes of every function this package creates.

    ``SECURITY DEFINER``: the functions write the log with their owner's
    privileges, so the application's role needs none on the log table. The
    search path is pinned, with ``pg_temp`` last: otherwise a session could
    put a temporary table of the log's name in front of the real one.

    Args:
        search_path: The schemas names resolve in, in order.
        settings: Further ``(name, value)`` settings pinned on the function.

    Returns:
        SQL to put between ``LANGUAGE plpgsql`` and ``AS``.
    """
    pinned = "".join(f" SET {name} = {value}" for name, value in settings)
    schemas = ", ".join([*(quote_ident(schema) for schema in search_path), "pg_temp"])
    return f"SECURITY DEFINER{pinned} SET search_path = {schemas}"


def create_content_type_function(content_type_table: str, search_path: Iterable[str] = ("public",)) -> str:
    """Return the shared helper that creates a missing content type and returns its id (NULL if it cannot).

    Only called when the lookup finds nothing, so its exception block (a
    subtransaction) costs nothing on the usual path.
    """
    table = quote_name(content_type_table)
    body = f"""
DECLARE
  _al_id integer;
BEGIN
  INSERT INTO {table} ("app_label", "model") VALUES (p_app_label, p_model)
    ON CONFLICT DO NOTHING RETURNING "id" INTO _al_id;
  IF _al_id IS NULL THEN
    SELECT "id" INTO _al_id FROM {table} WHERE "app_label" = p_app_label AND "model" = p_model;
  END IF;
  RETURN _al_id;
EXCEPTION WHEN string_data_right_truncation THEN
  -- A model name longer than the column (an auto-created many-to-many
  -- model's can be): Django cannot have a content type for it either. The
  -- entry is written without one; its table_name still says what changed.
  RETURN NULL;
END
"""
    return (
        f"CREATE OR REPLACE FUNCTION {quote_ident(CONTENT_TYPE_FUNCTION)}(p_app_label text, p_model text) "
        f"RETURNS integer LANGUAGE plpgsql {function_attributes(search_path)} AS {_BODY_TAG}{body}{_BODY_TAG}"
    )


def create_function(spec: AuditSpec) -> str:
    """Return ``CREATE OR REPLACE FUNCTION`` for the trigger function of ``spec``."""
    return (
        f"CREATE OR REPLACE FUNCTION {function_reference(spec.table)}() RETURNS trigger LANGUAGE plpgsql "
        f"{function_attributes(spec.search_path, FUNCTION_SETTINGS)} "
        f"AS {_BODY_TAG}{function_body(spec)}{_BODY_TAG}"
    )


def create_triggers(table: str) -> list[str]:
    """Return the four ``CREATE OR REPLACE TRIGGER`` statements for ``table``.

    Args:
        table: The audited table (see :func:`name_parts`).

    Returns:
        INSERT, UPDATE and DELETE triggers (AFTER, per statement, with
        transition tables) and a BEFORE TRUNCATE trigger.
    """
    qtable, qfunction = quote_name(table), function_reference(table)
    old, new = quote_ident(OLD_ROWS), quote_ident(NEW_ROWS)
    referencing = {
        "INSERT": f"REFERENCING NEW TABLE AS {new}",
        "UPDATE": f"REFERENCING OLD TABLE AS {old} NEW TABLE AS {new}",
        "DELETE": f"REFERENCING OLD TABLE AS {old}",
    }
    statements = []
    for event, name in TRIGGER_NAMES.items():
        timing = "BEFORE" if event == "TRUNCATE" else "AFTER"
        clause = referencing.get(event, "")
        statements.append(
            f"CREATE OR REPLACE TRIGGER {quote_ident(name)} {timing} {event} ON {qtable} "
            f"{clause + ' ' if clause else ''}FOR EACH STATEMENT EXECUTE FUNCTION {qfunction}()"
        )
    return statements


def install(spec: AuditSpec) -> list[str]:
    """Return every statement that installs (or refreshes) the triggers of ``spec``."""
    return [
        create_content_type_function(spec.content_type.table, spec.search_path),
        create_function(spec),
        *create_triggers(spec.table),
    ]


def uninstall(table: str) -> list[str]:
    """Return the statements that remove the triggers and function of ``table``.

    Both tolerate objects that are already gone.
    """
    qtable = quote_name(table)
    statements = [f"DROP TRIGGER IF EXISTS {quote_ident(name)} ON {qtable}" for name in TRIGGER_NAMES.values()]
    statements.append(f"DROP FUNCTION IF EXISTS {function_reference(table)}()")
    return statements


# --- the context setting ----------------------------------------------------


def set_context(payload: str) -> str:
    """Return the statement that hands ``payload`` to the triggers for the current transaction.

    ``SET LOCAL`` is a utility statement: no plan, no result rows. Sent in
    front of a write in the same query string, it runs in the same (implicit
    or explicit) transaction as the write, and PostgreSQL forgets it when that
    transaction ends, or when a savepoint it was set in is rolled back.

    Args:
        payload: The context as a JSON object (see ``audit_log.payload``).

    Returns:
        The statement, without a trailing semicolon.
    """
    return f"SET LOCAL {CONTEXT_SETTING} = {quote_literal(payload)}"


def clear_context() -> str:
    """Return the statement that hides the context from the triggers for the rest of the transaction."""
    return f"SET LOCAL {CONTEXT_SETTING} = ''"


def escape_percent(statement: str) -> str:
    """Double ``%`` so a statement survives DB-API parameter interpolation."""
    return statement.replace("%", "%%")


# --- introspection, for status checks ---------------------------------------

#: Where the audited tables and their functions are, by OID (NULL: missing).
#: Parameters: arrays of quoted table names and of function signatures.
RESOLVE_OBJECTS = """
SELECT t.ord, to_regclass(t.tbl)::oid, to_regprocedure(t.fn)::oid
FROM unnest(%s::text[], %s::text[]) WITH ORDINALITY AS t(tbl, fn, ord)
"""

#: Our trigger functions in the schemas the search path and the audited
#: tables use (parameter: the latter), whether any trigger calls them, and
#: whether they run with their owner's privileges.
INSTALLED_FUNCTIONS = """
SELECT p.oid, n.nspname, p.proname, p.prosrc, coalesce(p.proconfig, ARRAY[]::text[]),
  EXISTS (SELECT FROM pg_trigger AS t WHERE t.tgfoid = p.oid), p.prosecdef
FROM pg_proc AS p
JOIN pg_namespace AS n ON n.oid = p.pronamespace
WHERE p.proname LIKE 'audit\\_log\\_fn\\_%%'
  AND (p.pronamespace = ANY (current_schemas(false)::regnamespace[]) OR n.nspname = ANY (%s::text[]))
"""

#: The comments on our trigger functions that start with a mark (parameter: a LIKE pattern).
MARKED_FUNCTIONS = """
SELECT d.description
FROM pg_proc AS p
JOIN pg_description AS d ON d.objoid = p.oid AND d.classoid = 'pg_proc'::regclass
WHERE p.proname LIKE 'audit\\_log\\_fn\\_%%' AND d.description LIKE %s
"""

#: Our triggers in the same schemas (parameter: those of the audited tables).
INSTALLED_TRIGGERS = """
SELECT t.tgrelid, n.nspname, c.relname, t.tgname, t.tgfoid, t.tgenabled
FROM pg_trigger AS t
JOIN pg_class AS c ON c.oid = t.tgrelid
JOIN pg_namespace AS n ON n.oid = c.relnamespace
WHERE NOT t.tgisinternal AND t.tgname LIKE 'audit\\_log\\_%%'
  AND (c.relnamespace = ANY (current_schemas(false)::regnamespace[]) OR n.nspname = ANY (%s::text[]))
"""


def qualified(schema: str, name: str) -> str:
    """Return ``"schema"."name"``, which :func:`name_parts` reads back as the two parts."""
    return f"{quote_ident(schema)}.{quote_ident(name)}"
