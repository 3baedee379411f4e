"""From models to triggers: which tables are audited, their trigger specs, install and uninstall."""

from __future__ import annotations

import decimal
import json
import re
import uuid
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.apps import apps as global_apps
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import FieldDoesNotExist, ImproperlyConfigured
from django.db import router
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.models import Field, Model

from . import m2m, sql
from .conf import conf
from .fields import AuditLogsField
from .loading import get_context_model, get_log_entry_model

_BASE_TYPE = re.compile(r"[a-z ]+")


def column_of(field: Field[Any, Any] | Any) -> str:
    """Return the column of a concrete field (fields without one raise ``ValueError``)."""
    column = getattr(field, "column", None)
    if not column:
        raise ValueError(f"{field} has no database column")
    return str(column)


def audit_field(model: type[Model]) -> AuditLogsField | None:
    """Return the ``AuditLogsField`` that makes ``model`` audited, if any.

    A multi-table-inheritance child of an audited model is audited too (its own
    table holds its own columns), with its parent's options. So is the
    auto-created table of an audited model's many-to-many field, with the
    options of the model declaring the field, unless they name it in
    ``m2m_exclude`` (see :mod:`audit_log.m2m`).
    """
    for candidate in (model, *model._meta.get_parent_list()):
        for field in candidate._meta.local_fields:
            if isinstance(field, AuditLogsField):
                return field
    link = m2m.through_link(model)
    return m2m.link_audit(link, audit_field(link.parent)) if link is not None else None


def has_table(model: type[Model]) -> bool:
    """Return True if ``model`` has a table of its own that Django manages."""
    opts = model._meta
    return not (opts.abstract or opts.proxy or opts.swapped or not opts.managed)


def is_audited(model: type[Model]) -> bool:
    """Return True if ``model``'s table gets audit triggers."""
    return has_table(model) and audit_field(model) is not None


def audited_models(connection: BaseDatabaseWrapper, models: Iterable[type[Model]] | None = None) -> list[type[Model]]:
    """Return the audited models that live on ``connection`` (installed models by default).

    The auto-created models of audited many-to-many tables are included, also
    when ``models`` names only the models declaring the fields.
    """
    if models is None:
        candidates = global_apps.get_models(include_auto_created=True)
    else:
        candidates = []
        for model in models:
            candidates += [model, *(link.through for link in m2m.auto_created_links(model))]
        candidates = list(dict.fromkeys(candidates))
    return [model for model in candidates if is_audited(model) and router.allow_migrate_model(connection.alias, model)]


def resolve_columns(
    model: type[Model], names: Iterable[str], fields: Iterable[Field[Any, Any]] | None = None
) -> tuple[list[str], list[str]]:
    """Map field names (or attnames, or column names) of ``model`` to column names.

    Args:
        model: The model the names belong to.
        names: Field names, attnames or column names.
        fields: The concrete fields to resolve against, when they differ from
            the model's (during a schema change the model is the old state).

    Returns:
        ``(columns, unknown)``: the column names found (as the database
        spells them, without quotes), and the names that match no concrete
        field.
    """
    by_name: dict[str, str] = {}
    for field in model._meta.concrete_fields if fields is None else fields:
        if not field.column:
            continue
        column = sql.bare_name(column_of(field))
        by_name.update({field.name: column, field.attname: column, column_of(field): column, column: column})
    columns, unknown = [], []
    for name in names:
        if name in by_name:
            columns.append(by_name[name])
        else:
            unknown.append(name)
    return columns, unknown


def _is_comparable(db_type: str) -> bool:
    match = _BASE_TYPE.match(db_type.lower())
    return not match or match.group(0).strip() not in sql.TYPES_WITHOUT_EQUALITY


def _entry_model(audit: AuditLogsField) -> type[Model]:
    model = audit.remote_field.model
    # In migrations the field points at the historical entry model; fall back to
    # the installed one when the relation is still a lazy string.
    return model if isinstance(model, type) else get_log_entry_model()


def _log_columns(entry: type[Model]) -> sql.LogColumns:
    def column(name: str) -> str:
        try:
            return sql.bare_name(column_of(entry._meta.get_field(name)))
        except FieldDoesNotExist:
            raise ImproperlyConfigured(
                f"Log-entry model {entry._meta.label} has no field {name!r}: it must subclass "
                "audit_log.models.BaseLogEntry."
            ) from None

    return sql.LogColumns(
        content_type=column("content_type"),
        object_id=column("object_id"),
        action=column("action"),
        at=column("at"),
        changes=column("changes"),
        transaction_id=column("transaction_id"),
        table_name=column("table_name"),
    )


def context_columns(connection: BaseDatabaseWrapper) -> list[tuple[str, str]]:
    """Return ``(column, SQL type)`` of every concrete field of the context model."""
    model = get_context_model()
    return [(sql.bare_name(column_of(field)), field.db_type(connection) or "") for field in model._meta.concrete_fields]


def sql_constant(value: Any) -> str | None:
    """Render a field default as an SQL constant; None if it has no fixed SQL form."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | decimal.Decimal):
        return sql.quote_literal(str(value))
    if isinstance(value, str | uuid.UUID):
        return sql.quote_literal(str(value))
    if isinstance(value, dict | list):
        return sql.quote_literal(json.dumps(value)) + "::jsonb"
    return None


def context_fallbacks(context_model: type[Model] | None = None) -> dict[str, str]:
    """SQL constants for context columns a write may leave NULL: their non-callable defaults.

    Callable defaults (``uuid7``, ``dict``) are left out on purpose: a fixed
    value for them would be wrong.

    Args:
        context_model: The context model; default: ``AUDIT_LOG_CONTEXT_MODEL``.
    """
    fallbacks = {}
    for field in (context_model or get_context_model())._meta.concrete_fields:
        if field.has_default() and not callable(field.default):
            constant = sql_constant(field.default)
            if constant is not None:
                fallbacks[sql.bare_name(column_of(field))] = constant
    return fallbacks


def search_path(connection: BaseDatabaseWrapper) -> tuple[str, ...]:
    """Return the schemas the session's search path resolves names in (``current_schemas(false)``).

    The functions pin them: they resolve the log, content type and helper
    names as the session that installed them did, whoever fires them.
    """
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_schemas(false)")
        schemas = cursor.fetchone()[0]
    # psycopg2 returns name[] as a string ("{public}"), psycopg 3 as a list.
    if isinstance(schemas, str):
        schemas = [part.strip('"') for part in schemas.strip("{}").split(",") if part]
    return tuple(schemas) or ("public",)


def spec_for(
    model: type[Model],
    connection: BaseDatabaseWrapper,
    *,
    fields: Sequence[Field[Any, Any]] | None = None,
    audit: AuditLogsField | None = None,
    entry_columns: Collection[str] | None = None,
    table: str | None = None,
    schemas: Sequence[str] | None = None,
) -> sql.AuditSpec:
    """Describe the triggers of ``model``'s table.

    An auto-created many-to-many table is described as logged under the model
    declaring the field (see :mod:`audit_log.m2m`): that model's content
    type, the table's key to it as the object id, every column logged.

    Args:
        model: An audited model (current or historical).
        connection: The database the triggers are for.
        fields: The table's concrete fields, when they differ from the model's
            (during a schema change the model passed in is the old state).
        audit: The ``AuditLogsField`` whose options apply, when the model does
            not have it yet (it is being added).
        entry_columns: The log table's columns, when they differ from the
            entry model's (the log table is being altered).
        table: The table's name, when it differs from the model's (Django
            renames an auto-created many-to-many table with the old model).
        schemas: The search path to pin (default: the connection's, see
            :func:`search_path`).

    Returns:
        The trigger spec.

    Raises:
        ImproperlyConfigured: If the model has a composite primary key, or
            excludes or masks fields it does not have.
    """
    opts = model._meta
    audit = audit or audit_field(model)
    if audit is None:
        raise ImproperlyConfigured(f"{opts.label} is not audited: it has no AuditLogsField.")
    table_fields = [field for field in (opts.local_concrete_fields if fields is None else fields) if field.column]
    # During a schema change the model is the old state: the key, and what
    # is excluded or masked, come from the table's new columns.
    pk = next((field for field in table_fields if field.primary_key), opts.pk)
    if pk is None or pk.column is None:
        raise ImproperlyConfigured(f"{opts.label} has a composite primary key, which audit_log does not support.")
    link = m2m.through_link(model)
    logged_as = opts
    object_key = None
    excluded: list[str]
    masked: list[str]
    if link is not None:
        # An auto-created many-to-many table: its rows are logged whole, under
        # the model declaring the field, by their key to it. (The options'
        # exclude and mask name that model's fields, not these.)
        excluded, masked = [], []
        parent_key = next((field for field in table_fields if field.name == link.parent_field_name), None)
        object_key = sql.bare_name(column_of(parent_key or opts.get_field(link.parent_field_name)))
        logged_as = (link.parent._meta.concrete_model or link.parent)._meta
    else:
        excluded, unknown = resolve_columns(model, audit.exclude, table_fields)
        masked, unknown_masked = resolve_columns(model, audit.mask, table_fields)
        if unknown or unknown_masked:
            raise ImproperlyConfigured(
                f"{opts.label}.{audit.name} names fields that do not exist: {', '.join(unknown + unknown_masked)}."
            )
    # Sorted: the same table gives the same SQL whether its columns came from
    # the model's declaration or from a migration history that added them later.
    typed = sorted((sql.bare_name(column_of(field)), field.db_type(connection)) for field in table_fields)
    columns = tuple(
        sql.Column(name=column, comparable=_is_comparable(db_type), masked=column in masked)
        for column, db_type in typed
        if column not in excluded and db_type is not None
    )
    entry = _entry_model(audit)
    if entry_columns is None:
        entry_columns = {sql.bare_name(column_of(field)) for field in entry._meta.concrete_fields}
    copied = tuple((name, sql_type) for name, sql_type in context_columns(connection) if name in entry_columns)
    return sql.AuditSpec(
        table=table or opts.db_table,
        pk=sql.bare_name(column_of(pk)),
        columns=columns,
        excluded=tuple(sorted(excluded)),
        log_table=entry._meta.db_table,
        log_columns=_log_columns(entry),
        object_id_type=entry._meta.get_field("object_id").db_type(connection) or "text",
        content_type=sql.ContentTypeTable(
            table=ContentType._meta.db_table, app_label=logged_as.app_label, model=str(logged_as.model_name)
        ),
        context=sql.ContextColumns(
            columns=copied,
            fallbacks=tuple(context_fallbacks().items()),
        ),
        require_context=conf.require_context,
        search_path=tuple(schemas) if schemas is not None else search_path(connection),
        object_id_column=object_key,
    )


#: How an ``AddAuditLogging`` operation marks the function it installs (a
#: comment on it), so that status and install know a model without an
#: ``AuditLogsField`` is audited.
OPERATION_MARK = "audit_log AddAuditLogging: "


def install(
    schema_editor: BaseDatabaseSchemaEditor, model: type[Model], *, by_operation: bool = False, **options: Any
) -> None:
    """Install (or refresh) the audit triggers of ``model``'s table.

    Idempotent: the function is created or replaced and so are the triggers.
    Runs through the schema editor, so ``sqlmigrate`` shows the statements.

    Args:
        schema_editor: The schema editor of the running migration.
        model: The audited model.
        by_operation: Installed by ``AddAuditLogging``: mark the function so
            that ``audit_log_status`` and ``audit_log_install`` keep knowing
            the table is audited.
        **options: Passed to :func:`spec_for`.
    """
    spec = spec_for(model, schema_editor.connection, **options)
    statements = sql.install(spec)
    if by_operation:
        mark = sql.quote_literal(OPERATION_MARK + model._meta.label)
        statements.append(f"COMMENT ON FUNCTION {sql.function_reference(spec.table)}() IS {mark}")
    for statement in statements:
        schema_editor.execute(statement, params=None)


def operation_audited_models(connection: BaseDatabaseWrapper, known: Iterable[type[Model]] = ()) -> list[type[Model]]:
    """Return the installed models audited by ``AddAuditLogging`` rather than by an ``AuditLogsField``.

    Found through the mark :func:`install` leaves on their functions; models
    in ``known`` (already audited by a field) and models no longer installed
    are left out.
    """
    with connection.cursor() as cursor:
        cursor.execute(sql.MARKED_FUNCTIONS, [OPERATION_MARK.replace("_", "\\_") + "%"])
        labels = {comment[len(OPERATION_MARK) :] for (comment,) in cursor.fetchall()}
    known_labels = {model._meta.label for model in known}
    models = []
    for label in sorted(labels - known_labels):
        try:
            model = global_apps.get_model(label)
        except (LookupError, ValueError):
            continue  # the model is gone: its triggers are orphaned
        if has_table(model) and router.allow_migrate_model(connection.alias, model):
            models.append(model)
    return models


def refresh(schema_editor: BaseDatabaseSchemaEditor, model: type[Model], **options: Any) -> bool:
    """Reinstall the triggers of ``model`` for a schema change, unless they would come out the same.

    The trigger depends only on the columns' names and a few traits of their
    types, so many changes (a ``max_length``, a ``NOT NULL``) leave it as it
    is: then nothing is run.

    Args:
        schema_editor: The schema editor of the running migration.
        model: The audited model, in its state before the change.
        **options: What changes, passed to :func:`spec_for` (``fields`` ...).

    Returns:
        Whether the triggers were reinstalled.
    """
    connection = schema_editor.connection
    statements = sql.install(spec_for(model, connection, **options))
    try:
        before = sql.install(spec_for(model, connection, audit=options.get("audit")))
    except ImproperlyConfigured:
        before = []  # the old state could not be audited (a bad option): install all
    changed = [
        statement for index, statement in enumerate(statements) if index >= len(before) or statement != before[index]
    ]
    # Usually only the function: the triggers call it by a name that comes
    # from the table's, which a column change leaves alone.
    for statement in changed:
        schema_editor.execute(statement, params=None)
    return bool(changed)


def install_function(schema_editor: BaseDatabaseSchemaEditor, model: type[Model], **options: Any) -> None:
    """Replace only the trigger function of ``model``'s table; its triggers call it by name already.

    For changes that leave the table and its columns as they are but not what
    the function logs, such as the model's name (its content type).

    Args:
        schema_editor: The schema editor of the running migration.
        model: The audited model.
        **options: Passed to :func:`spec_for`.
    """
    schema_editor.execute(sql.create_function(spec_for(model, schema_editor.connection, **options)), params=None)


def uninstall(schema_editor: BaseDatabaseSchemaEditor, table: str) -> None:
    """Remove the audit triggers and function of ``table`` (tolerates their absence)."""
    for statement in sql.uninstall(table):
        schema_editor.execute(statement, params=None)


@dataclass(frozen=True)
class TableStatus:
    """What the database has for one audited (or formerly audited) table.

    Attributes:
        table: The table name as the model spells it; for what no model
            audits, the qualified name (``"schema"."name"``), which
            :func:`uninstall` and ``sql.name_parts`` accept.
        model: The model label, or "" for what no model audits any more.
        state: ``"ok"``, ``"missing"``, ``"outdated"``, ``"disabled"``,
            ``"orphaned"`` (triggers left on a table no model audits) or
            ``"orphaned function"`` (a trigger function no trigger calls and
            no model needs; ``table`` then names the function).
        detail: What differs, for humans.
    """

    table: str
    model: str
    state: str
    detail: str = ""

    @property
    def ok(self) -> bool:
        """True if the table's triggers are installed and current."""
        return self.state == "ok"


def status(connection: BaseDatabaseWrapper, models: Iterable[type[Model]] | None = None) -> list[TableStatus]:
    """Compare the triggers in the database with what the audited models need.

    Tables and functions are matched by OID, so a schema-qualified table is
    found in its schema and an unqualified one where the search path finds it.

    Args:
        connection: The database to inspect.
        models: Models to consider; by default every installed model.

    Returns:
        One status per audited table, one per table with orphaned triggers,
        and one per orphaned trigger function.
    """
    schemas = search_path(connection)
    by_field = audited_models(connection, models)
    specs = [(model, spec_for(model, connection, schemas=schemas)) for model in by_field]
    if models is None:
        specs += [
            (model, spec_for(model, connection, schemas=schemas, audit=audit_field(model) or AuditLogsField()))
            for model in operation_audited_models(connection, by_field)
        ]
    table_schemas = sorted({schema for _, spec in specs if (schema := sql.function_schema(spec.table))})
    with connection.cursor() as cursor:
        located: dict[int, tuple[int | None, int | None]] = {}
        if specs:
            cursor.execute(
                sql.RESOLVE_OBJECTS,
                [
                    [sql.quote_name(spec.table) for _, spec in specs],
                    [f"{sql.function_reference(spec.table)}()" for _, spec in specs],
                ],
            )
            located = {ordinal: (table_oid, function_oid) for ordinal, table_oid, function_oid in cursor.fetchall()}
        cursor.execute(sql.INSTALLED_FUNCTIONS, [table_schemas])
        functions = {row[0]: row[1:] for row in cursor.fetchall()}
        cursor.execute(sql.INSTALLED_TRIGGERS, [table_schemas])
        installed = cursor.fetchall()
    triggers_on: dict[int, dict[str, tuple[int, str]]] = {}
    for table_oid, _, _, name, function_oid, enabled in installed:
        triggers_on.setdefault(table_oid, {})[name] = (function_oid, enabled)
    wanted_settings = {f"{name}={value}" for name, value in sql.FUNCTION_SETTINGS}
    wanted_settings.add("search_path=" + ", ".join([*(sql.quote_ident(schema) for schema in schemas), "pg_temp"]))
    results = []
    audited_oids, expected_functions = set(), set()
    for ordinal, (model, spec) in enumerate(specs, start=1):
        table_oid, function_oid = located.get(ordinal, (None, None))
        label = model._meta.label
        if table_oid is not None:
            audited_oids.add(table_oid)
        if function_oid is None or function_oid not in functions:
            results.append(TableStatus(spec.table, label, "missing", f"function {spec.function} does not exist"))
            continue
        expected_functions.add(function_oid)
        _, _, source, config, _, definer = functions[function_oid]
        problems = []
        if source != sql.function_body(spec):
            problems.append("function body differs from what the model needs")
        if not wanted_settings <= {_normal_setting(setting) for setting in config}:
            problems.append("function settings differ")
        if not definer:
            problems.append("function does not run as its owner (SECURITY DEFINER)")
        on_table = triggers_on.get(table_oid, {}) if table_oid is not None else {}
        names = list(sql.TRIGGER_NAMES.values())
        missing = [name for name in names if name not in on_table]
        wrong = [name for name in names if name in on_table and on_table[name][0] != function_oid]
        disabled = [name for name in names if name in on_table and on_table[name][1] == "D"]
        if missing:
            results.append(TableStatus(spec.table, label, "missing", "missing triggers: " + ", ".join(missing)))
        elif disabled:
            results.append(TableStatus(spec.table, label, "disabled", "disabled triggers: " + ", ".join(disabled)))
        elif wrong or problems:
            problems += [f"trigger {name} calls another function" for name in wrong]
            results.append(TableStatus(spec.table, label, "outdated", "; ".join(problems)))
        else:
            results.append(TableStatus(spec.table, label, "ok"))
    orphans: dict[str, set[str]] = {}
    for table_oid, schema, relname, name, function_oid, _ in installed:
        if table_oid not in audited_oids and name in sql.TRIGGER_NAMES.values():
            called = functions.get(function_oid)
            orphans.setdefault(sql.qualified(schema, relname), set()).add(called[1] if called else str(function_oid))
    for table, callees in sorted(orphans.items()):
        detail = f"triggers call {', '.join(sorted(callees))}, but no installed model audits this table"
        results.append(TableStatus(table, "", "orphaned", detail))
    for function_oid, (schema, name, _, _, called, _) in sorted(functions.items(), key=lambda item: item[1][:2]):
        if not called and function_oid not in expected_functions:
            detail = "no trigger calls it and no installed model needs it; `audit_log_install --prune` drops it"
            results.append(TableStatus(sql.qualified(schema, name), "", "orphaned function", detail))
    return results


def drop_function(schema_editor: BaseDatabaseSchemaEditor, name: str) -> None:
    """Drop an orphaned trigger function, named as :func:`status` reports it (``"schema"."name"``)."""
    schema_editor.execute(f"DROP FUNCTION IF EXISTS {sql.quote_name(name)}()", params=None)


def _normal_setting(setting: str) -> str:
    # PostgreSQL stores a search path quoting only what needs it
    # (public, "Other Schema", pg_temp): compare the names, not the quotes.
    name, _, value = setting.partition("=")
    if name != "search_path":
        return setting
    names = [sql.name_parts(part.strip())[0] for part in value.split(",")]
    return "search_path=" + ", ".join(sql.quote_ident(part) if part != "pg_temp" else part for part in names)
