"""System checks: misconfiguration is reported by ``manage.py check`` with an id and a hint."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from django.apps import apps
from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.db import connections, router
from django.db.models import Model
from django.utils.module_loading import import_string

from . import triggers
from .conf import conf
from .loading import get_context_model, get_log_entry_model

CHECK_TAG = "audit_log"

_INTEGER_TYPES = {"integer", "bigint", "smallint", "serial", "bigserial", "smallserial"}


def register() -> None:
    """Register every check of the package (called from ``AppConfig.ready``)."""
    checks.register(check_settings, CHECK_TAG, checks.Tags.models)
    checks.register(check_models, CHECK_TAG, checks.Tags.models)
    checks.register(check_databases, CHECK_TAG, checks.Tags.database, checks.Tags.compatibility)
    checks.register(check_middleware, CHECK_TAG)


def _model_setting(setting: str, loader: Any, error_id: str) -> tuple[type[Model] | None, list[checks.CheckMessage]]:
    try:
        return loader(), []
    except ImproperlyConfigured as error:
        hint = f"Define a model in one of your apps (see the README) and set {setting} = 'app_label.ModelName'."
        return None, [checks.Error(str(error), hint=hint, id=error_id)]


def check_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Check the ``AUDIT_LOG_*`` settings and the two models they name."""
    from .models import BaseContext, BaseLogEntry

    errors: list[checks.CheckMessage] = []
    context_model, problems = _model_setting("AUDIT_LOG_CONTEXT_MODEL", get_context_model, "audit_log.E001")
    errors += problems
    entry_model, problems = _model_setting("AUDIT_LOG_ENTRY_MODEL", get_log_entry_model, "audit_log.E002")
    errors += problems

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
                f"The context model {context_model._meta.label} is managed, so migrate would create a "
                "permanent table for it; the context lives in a temporary table.",
                hint="Add `class Meta: managed = False` to the context model and run makemigrations.",
                obj=context_model,
                id="audit_log.E005",
            )
        )
    if context_model is not None and entry_model is not None:
        entry_columns = {field.column for field in entry_model._meta.concrete_fields}
        missing = [f.name for f in context_model._meta.concrete_fields if f.column not in entry_columns]
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

    raw_choices = getattr(settings, "AUDIT_LOG_CONTEXT_TYPE_CHOICES", ())
    if not _is_choices(raw_choices):
        errors.append(
            checks.Error(
                "AUDIT_LOG_CONTEXT_TYPE_CHOICES must be a dict or a sequence of (value, label) pairs.",
                hint='For example {"celery-task": "Celery task"}.',
                id="audit_log.E011",
            )
        )
    for name in ("AUDIT_LOG_REQUIRE_CONTEXT", "AUDIT_LOG_TRANSACTION_POOLING"):
        if not isinstance(getattr(settings, name, False), bool):
            errors.append(
                checks.Error(f"{name} must be True or False.", hint=f"Set {name} to a bool.", id="audit_log.E012")
            )
    return errors


def _is_choices(value: Any) -> bool:
    if isinstance(value, Mapping):
        return True
    if isinstance(value, str) or not isinstance(value, Sequence):
        return False
    return all(isinstance(pair, Sequence) and not isinstance(pair, str) and len(pair) == 2 for pair in value)


def check_models(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Check every audited model: primary key, excluded and masked fields, object-id type."""
    errors: list[checks.CheckMessage] = []
    try:
        entry_model = get_log_entry_model()
        object_id_type = entry_model._meta.get_field("object_id").db_type(connections["default"]) or ""
    except Exception:  # noqa: BLE001  # reported by check_settings
        entry_model, object_id_type = None, ""
    for model in apps.get_models():
        if not triggers.is_audited(model):
            continue
        audit = triggers.audit_field(model)
        assert audit is not None  # is_audited
        pk = model._meta.pk
        if pk is None or pk.column is None:
            errors.append(
                checks.Error(
                    f"{model._meta.label} has a composite primary key; audit_log logs one object id per row.",
                    hint="Give the model a single-column primary key, or stop auditing it.",
                    obj=model,
                    id="audit_log.E008",
                )
            )
            continue
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
        pk_type = (pk.db_type(connections["default"]) or "").lower()
        if object_id_type.lower() in _INTEGER_TYPES and pk_type not in _INTEGER_TYPES:
            errors.append(
                checks.Error(
                    f"{model._meta.label} has a {pk_type} primary key, but {entry_model._meta.label}.object_id "
                    f"is {object_id_type}.",
                    hint="Make object_id a TextField (the BaseLogEntry default), which holds every key type.",
                    obj=model,
                    id="audit_log.E010",
                )
            )
    return errors


def check_databases(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Check that audited models live on PostgreSQL, with a schema editor that installs triggers."""
    from .db.backend.schema import AuditLogSchemaEditorMixin

    errors: list[checks.CheckMessage] = []
    all_models = [model for model in apps.get_models() if triggers.is_audited(model)]
    for alias in connections:
        connection = connections[alias]
        models = [model for model in all_models if router.allow_migrate_model(alias, model)]
        if not models:
            continue
        if connection.vendor != "postgresql":
            errors.append(
                checks.Error(
                    f"Database {alias!r} uses {connection.settings_dict['ENGINE']!r}; audit_log needs PostgreSQL.",
                    hint="Use ENGINE 'audit_log.db.backend' (or route audited models to a PostgreSQL database).",
                    id="audit_log.E007",
                )
            )
            continue
        editor_class = connection.SchemaEditorClass
        if not issubclass(editor_class, AuditLogSchemaEditorMixin):
            names = ", ".join(model._meta.label for model in models[:5])
            errors.append(
                checks.Warning(
                    f"Database {alias!r} uses {connection.settings_dict['ENGINE']!r}, whose schema editor does "
                    f"not install audit triggers, yet models are audited there ({names}).",
                    hint="Use ENGINE 'audit_log.db.backend', mix AuditLogSchemaEditorMixin into your backend's "
                    "schema editor, or add audit_log.db.migrations.operations.AddAuditLogging operations to "
                    "your migrations (then silence audit_log.W001).",
                    id="audit_log.W001",
                )
            )
        if connection.settings_dict.get("DISABLE_SERVER_SIDE_CURSORS") and not conf.transaction_pooling:
            errors.append(
                checks.Warning(
                    f"Database {alias!r} sets DISABLE_SERVER_SIDE_CURSORS, which suggests a transaction-pooling "
                    "proxy such as PgBouncer. There the audit context row and the change can land on different "
                    "server sessions, and changes would be logged with the wrong or no context.",
                    hint="Set AUDIT_LOG_TRANSACTION_POOLING = True if the database is behind transaction "
                    "pooling; otherwise silence audit_log.W002.",
                    id="audit_log.W002",
                )
            )
    return errors


def check_middleware(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Check that the request middleware comes after authentication, so it sees the user."""
    from .middleware import RequestContextMiddleware

    middleware = list(getattr(settings, "MIDDLEWARE", None) or [])
    positions = {}
    for index, path in enumerate(middleware):
        try:
            positions[import_string(path)] = index
        except ImportError:
            continue
    ours = positions.get(RequestContextMiddleware)
    if ours is None:
        return []
    from django.contrib.auth.middleware import AuthenticationMiddleware

    auth = next(
        (
            index
            for cls, index in positions.items()
            if isinstance(cls, type) and issubclass(cls, AuthenticationMiddleware)
        ),
        None,
    )
    if auth is None or auth > ours:
        return [
            checks.Warning(
                "RequestContextMiddleware runs before AuthenticationMiddleware, so it cannot record who made a change.",
                hint="Move 'audit_log.middleware.RequestContextMiddleware' after "
                "'django.contrib.auth.middleware.AuthenticationMiddleware' in MIDDLEWARE.",
                id="audit_log.W003",
            )
        ]
    return []
