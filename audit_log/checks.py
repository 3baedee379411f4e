"""System checks: misconfiguration is reported by ``manage.py check`` with an id and a hint.

Each ``check_*`` function is registered with Django; each takes what it checks
from the installed project and hands it to a ``_check_*`` helper that takes
its inputs as arguments.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from django.apps import apps
from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.db import connections, router
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Model
from django.utils.module_loading import import_string

from . import m2m, triggers
from .conf import conf
from .fields import AuditLogsField
from .loading import get_context_model, get_log_entry_model

CHECK_TAG = "audit_log"

_INTEGER_TYPES = {"integer", "bigint", "smallint", "serial", "bigserial", "smallserial"}
_BOOLEAN_SETTINGS = ("AUDIT_LOG_REQUIRE_CONTEXT",)
#: Settings earlier versions read, with why they are gone.
_OBSOLETE_SETTINGS = {
    "AUDIT_LOG_TRANSACTION_POOLING": "the context now travels inside each write's own transaction, which works "
    "behind transaction pooling as it is",
}


def register() -> None:
    """Register every check of the package (called from ``AppConfig.ready``)."""
    checks.register(_when_installed(check_settings), CHECK_TAG, checks.Tags.models)
    checks.register(_when_installed(check_models), CHECK_TAG, checks.Tags.models)
    checks.register(_when_installed(check_databases), CHECK_TAG, checks.Tags.database, checks.Tags.compatibility)
    checks.register(_when_installed(check_middleware), CHECK_TAG)
    checks.register(_when_installed(check_partitioning_setting), CHECK_TAG)
    # Only the database tag, like Django's own checks that query: `check --tag audit_log` (which Django 6 runs
    # with every alias) stays static; migrate and `check --database` run it.
    checks.register(_when_installed(check_partitions), checks.Tags.database)


def _when_installed(check: Callable[..., list[checks.CheckMessage]]) -> Callable[..., list[checks.CheckMessage]]:
    """Run ``check`` only while ``audit_log`` is installed.

    Checks stay registered for the process once the app was ready; a test or
    project that then overrides ``INSTALLED_APPS`` without it (as Django's
    admin checks allow for ``django.contrib.admin``) has nothing to check.
    """

    @functools.wraps(check)
    def run(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
        if not apps.is_installed("audit_log"):
            return []
        return check(app_configs, **kwargs)

    return run


# --- settings and the two configured models ------------------------------------


def _load(setting: str, loader: Any, error_id: str) -> tuple[type[Model] | None, list[checks.CheckMessage]]:
    try:
        return loader(), []
    except ImproperlyConfigured as error:
        hint = f"Define a model in one of your apps (see the README) and set {setting} = 'app_label.ModelName'."
        if setting == "AUDIT_LOG_ENTRY_MODEL" and getattr(settings, setting, None):
            # A name that resolves to nothing also makes Django report every
            # audited model's audit_logs relation (fields.E300, fields.E307,
            # models.E022): say where they come from.
            hint += " Django's errors about the audit_logs fields' lazy references follow from this one."
        return None, [checks.Error(str(error), hint=hint, id=error_id)]


def check_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Check the ``AUDIT_LOG_*`` settings and the two models they name."""
    context_model, errors = _load("AUDIT_LOG_CONTEXT_MODEL", get_context_model, "audit_log.E001")
    entry_model, problems = _load("AUDIT_LOG_ENTRY_MODEL", get_log_entry_model, "audit_log.E002")
    errors += problems
    errors += _check_models_pair(context_model, entry_model)
    errors += _check_plain_settings(
        {name: getattr(settings, name) for name in dir(settings) if name.startswith("AUDIT_LOG_")}
    )
    errors += _check_read_database(getattr(settings, "AUDIT_LOG_READ_DATABASE", None), settings.DATABASES)
    return errors


def _check_read_database(alias: Any, databases: Mapping[str, Any]) -> list[checks.CheckMessage]:
    """Check that ``AUDIT_LOG_READ_DATABASE`` is unset or names a configured database alias."""
    if alias is None or alias == "" or (isinstance(alias, str) and alias in databases):
        return []
    return [
        checks.Error(
            f"AUDIT_LOG_READ_DATABASE is {alias!r}, which is no alias of DATABASES "
            f"({', '.join(repr(name) for name in databases)}).",
            hint="Set it to the alias of the database the log is read from (e.g. a replica's), add that alias "
            "to DATABASES, or remove the setting to read the log from the primary.",
            id="audit_log.E014",
        )
    ]


def _check_models_pair(context_model: type[Model] | None, entry_model: type[Model] | None) -> list[checks.CheckMessage]:
    from .models import BaseContext, BaseLogEntry

    errors: list[checks.CheckMessage] = []
    if context_model is not None and not issubclass(context_model, BaseContext):
        errors.append(
            checks.Error(
                f"AUDIT_LOG_CONTEXT_MODEL names {context_model._meta.label}, which is not a BaseContext.",
                hint="Subclass audit_log.models.BaseContext.",
                obj=context_model,
                id="audit_log.E003",
            )
        )
        context_model = None
    if entry_model is not None and not issubclass(entry_model, BaseLogEntry):
        errors.append(
            checks.Error(
                f"AUDIT_LOG_ENTRY_MODEL names {entry_model._meta.label}, which is not a BaseLogEntry.",
                hint="Subclass audit_log.models.BaseLogEntry.",
                obj=entry_model,
                id="audit_log.E004",
            )
        )
        entry_model = None
    if context_model is not None and context_model._meta.managed:
        errors.append(
            checks.Error(
                f"The context model {context_model._meta.label} is managed, so migrate would create a table for "
                "it; the context never lives in a table (it travels with each write).",
                hint="Add `class Meta: managed = False` to the context model and run makemigrations.",
                obj=context_model,
                id="audit_log.E005",
            )
        )
    if context_model is None or entry_model is None:
        return errors
    entry_columns = {field.column for field in entry_model._meta.concrete_fields}
    missing = [field.name for field in context_model._meta.concrete_fields if field.column not in entry_columns]
    if missing:
        errors.append(
            checks.Error(
                f"Context fields {', '.join(missing)} of {context_model._meta.label} are missing from "
                f"{entry_model._meta.label}: the triggers copy every context field onto each entry.",
                hint=f"Add the same fields (same column names) to {entry_model._meta.label}, then run "
                "makemigrations and migrate.",
                obj=entry_model,
                id="audit_log.E006",
            )
        )
    fallbacks = triggers.context_fallbacks(context_model)
    unfillable = [
        field.name
        for field in entry_model._meta.concrete_fields
        if field.column in {f.column for f in context_model._meta.concrete_fields}
        and not field.null
        and field.column not in fallbacks
        and field.name not in {"context_type", "context"}
    ]
    if unfillable:
        errors.append(
            checks.Error(
                f"{entry_model._meta.label} fields {', '.join(unfillable)} are NOT NULL, but changes made without a "
                "context have no value for them.",
                hint="Make them null=True, or give the context model's fields a constant default.",
                obj=entry_model,
                id="audit_log.E013",
            )
        )
    return errors


def _check_plain_settings(values: Mapping[str, Any]) -> list[checks.CheckMessage]:
    errors: list[checks.CheckMessage] = []
    if not _is_choices(values.get("AUDIT_LOG_CONTEXT_TYPE_CHOICES", ())):
        errors.append(
            checks.Error(
                "AUDIT_LOG_CONTEXT_TYPE_CHOICES must be a dict or a sequence of (value, label) pairs.",
                hint='For example {"celery-task": "Celery task"}.',
                id="audit_log.E011",
            )
        )
    errors += [
        checks.Error(f"{name} must be True or False.", hint=f"Set {name} to a bool.", id="audit_log.E012")
        for name in _BOOLEAN_SETTINGS
        if not isinstance(values.get(name, False), bool)
    ]
    errors += [
        checks.Warning(
            f"{name} has no effect any more: {reason}.",
            hint=f"Remove {name} from your settings.",
            id="audit_log.W004",
        )
        for name, reason in _OBSOLETE_SETTINGS.items()
        if name in values
    ]
    return errors


def _is_choices(value: Any) -> bool:
    if isinstance(value, Mapping):
        return True
    if isinstance(value, str) or not isinstance(value, Sequence):
        return False
    return all(isinstance(pair, Sequence) and not isinstance(pair, str) and len(pair) == 2 for pair in value)


# --- audited models --------------------------------------------------------------


def check_models(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Check every audited model: primary key, excluded and masked fields, object-id type."""
    try:
        object_id_type = get_log_entry_model()._meta.get_field("object_id").db_type(connections["default"]) or ""
    except (ImproperlyConfigured, LookupError):  # reported by check_settings
        object_id_type = ""
    if app_configs is None:
        models: Iterable[type[Model]] = apps.get_models()
    else:
        models = (model for app_config in app_configs for model in app_config.get_models())
    errors: list[checks.CheckMessage] = []
    for model in models:
        if triggers.is_audited(model):
            errors += _check_audited_model(model, object_id_type)
    return errors


def _check_audited_model(model: type[Model], object_id_type: str) -> list[checks.CheckMessage]:
    audit = triggers.audit_field(model)
    assert audit is not None  # only called for audited models
    pk = model._meta.pk
    if pk is None or pk.column is None:
        return [
            checks.Error(
                f"{model._meta.label} has a composite primary key; audit_log logs one object id per row.",
                hint="Give the model a single-column primary key, or stop auditing it.",
                obj=model,
                id="audit_log.E008",
            )
        ]
    errors: list[checks.CheckMessage] = []
    _, unknown = triggers.resolve_columns(model, (*audit.exclude, *audit.mask))
    if unknown:
        errors.append(
            checks.Error(
                f"{model._meta.label}.{audit.name} excludes or masks unknown fields: {', '.join(unknown)}.",
                hint="Use names of concrete fields of the model.",
                obj=model,
                id="audit_log.E009",
            )
        )
    if audit.model is model:  # once, on the model declaring the options
        errors += _check_m2m_exclude(model, audit)
    pk_type = (pk.rel_db_type(connections["default"]) or "").lower()
    if object_id_type.lower() in _INTEGER_TYPES and pk_type not in _INTEGER_TYPES:
        errors.append(
            checks.Error(
                f"{model._meta.label} has a {pk_type} primary key, but the log's object_id is {object_id_type}.",
                hint="Make object_id a TextField (the BaseLogEntry default), which holds every key type.",
                obj=model,
                id="audit_log.E010",
            )
        )
    return errors


def _check_m2m_exclude(model: type[Model], audit: AuditLogsField) -> list[checks.CheckMessage]:
    # The options apply to the model's multi-table-inheritance children too.
    family = [model, *(other for other in apps.get_models() if model in other._meta.get_parent_list())]
    names = {link.field.name for owner in family for link in m2m.auto_created_links(owner)}
    unknown = [name for name in audit.m2m_exclude if name not in names]
    if not unknown:
        return []
    return [
        checks.Error(
            f"{model._meta.label}.{audit.name} leaves out unknown many-to-many fields: {', '.join(unknown)}.",
            hint="Use names of the model's many-to-many fields that have no through= model of their own (a "
            "through= model is audited like any other model).",
            obj=model,
            id="audit_log.E009",
        )
    ]


# --- databases ---------------------------------------------------------------------


def check_databases(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Check that audited models live on PostgreSQL, with a schema editor that installs triggers."""
    audited = [model for model in apps.get_models() if triggers.is_audited(model)]
    errors: list[checks.CheckMessage] = []
    for alias in connections:
        models = [model for model in audited if router.allow_migrate_model(alias, model)]
        errors += _check_connection(connections[alias], models)
    return errors


def check_partitioning_setting(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Check that ``AUDIT_LOG_PARTITIONING`` is None, "month", "week" or "day"."""
    try:
        conf.partitioning  # noqa: B018  # read for the error it raises
    except ImproperlyConfigured as error:
        return [checks.Error(str(error), hint="Use one of the values or leave it unset.", id="audit_log.E015")]
    return []


def check_partitions(app_configs: Any = None, databases: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Warn when the log's default partition holds rows, or the table and the setting disagree (database check).

    Like Django's own database checks, it runs only for the databases the
    command names (``migrate``, ``check --database``).
    """
    from . import partition_health

    try:
        interval, log_model = conf.partitioning, get_log_entry_model()
    except ImproperlyConfigured:
        return []  # E015, E002 say why
    warnings: list[checks.CheckMessage] = []
    for alias in databases or ():
        if router.allow_migrate_model(alias, log_model):
            found = partition_health.problems(connections[alias], log_model._meta.db_table, interval)
            warnings += [checks.Warning(f"{p.message} (database {alias!r})", hint=p.hint, id=p.id) for p in found]
    return warnings


def _check_connection(connection: BaseDatabaseWrapper, models: Sequence[type[Model]]) -> list[checks.CheckMessage]:
    from .db.backend.schema import AuditLogSchemaEditorMixin

    if not models:
        return []
    alias, engine = connection.alias, connection.settings_dict["ENGINE"]
    if connection.vendor != "postgresql":
        return [
            checks.Error(
                f"Database {alias!r} uses {engine!r}; audit_log needs PostgreSQL.",
                hint="Use ENGINE 'audit_log.db.backend' (or route audited models to a PostgreSQL database).",
                id="audit_log.E007",
            )
        ]
    errors: list[checks.CheckMessage] = []
    if not issubclass(connection.SchemaEditorClass, AuditLogSchemaEditorMixin):
        names = ", ".join(model._meta.label for model in models[:5])
        errors.append(
            checks.Warning(
                f"Database {alias!r} uses {engine!r}, whose schema editor does not install audit triggers, yet "
                f"models are audited there ({names}).",
                hint="Use ENGINE 'audit_log.db.backend', mix AuditLogSchemaEditorMixin into your backend's schema "
                "editor, or add audit_log.db.migrations.operations.AddAuditLogging operations to your migrations "
                "(then silence audit_log.W001).",
                id="audit_log.W001",
            )
        )
    return errors


# --- middleware ----------------------------------------------------------------------


def check_middleware(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Check that the request middleware comes after authentication, so it sees the user."""
    return _check_middleware_order(list(getattr(settings, "MIDDLEWARE", None) or []))


def _check_middleware_order(middleware: Sequence[str]) -> list[checks.CheckMessage]:
    from django.contrib.auth.middleware import AuthenticationMiddleware

    from .middleware import RequestContextMiddleware

    ours = auth = None
    for index, path in enumerate(middleware):
        try:
            cls = import_string(path)
        except ImportError:
            continue
        if not isinstance(cls, type):
            continue
        if ours is None and issubclass(cls, RequestContextMiddleware):
            ours = index
        if auth is None and issubclass(cls, AuthenticationMiddleware):
            auth = index
    if ours is not None and (auth is None or auth > ours):
        return [
            checks.Warning(
                "RequestContextMiddleware runs before AuthenticationMiddleware, so it cannot record who made a change.",
                hint="Move 'audit_log.middleware.RequestContextMiddleware' after "
                "'django.contrib.auth.middleware.AuthenticationMiddleware' in MIDDLEWARE.",
                id="audit_log.W003",
            )
        ]
    return []
