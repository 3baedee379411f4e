"""``AuditLogsField``: ``obj.audit_logs``, and the marker the schema editor looks for.

``obj.audit_logs`` is Django's generic related manager with three changes. It
filters on the content type through :class:`ContentTypeId`, so reading an
object's log is one query even when ContentType's cache is cold (Django's
manager looks the content type up in its ``__init__``, a query of its own).
And it is read-only: log entries are written by the triggers, so ``add()``,
``create()``, ``clear()`` and the other writes through the relation raise
:class:`ReadOnlyRelationError` instead of forging or deleting history. And it
reads from ``AUDIT_LOG_READ_DATABASE`` when that is set (see
``audit_log.routing``); ``obj.audit_logs.db_manager(alias)`` still reads
where it is told.
"""

from __future__ import annotations

import datetime
import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from django.conf import SettingsReference
from django.contrib.contenttypes.fields import (
    GenericRel,
    GenericRelation,
    ReverseGenericManyToOneDescriptor,
    create_generic_related_manager,
)
from django.contrib.contenttypes.models import ContentType
from django.db import DEFAULT_DB_ALIAS
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Expression, Field, ForeignKey, IntegerField, Model, QuerySet
from django.db.models.sql.compiler import SQLCompiler
from django.db.models.sql.where import AND, WhereNode
from django.utils.functional import cached_property

from .conf import UNSET_MODEL, conf
from .routing import log_read_database

if TYPE_CHECKING:
    from .history import Reverted
    from .models import BaseLogEntry

#: The setting that names the log-entry model.
ENTRY_MODEL_SETTING = "AUDIT_LOG_ENTRY_MODEL"

#: The generic related manager's writes; none of them may touch a trigger-written log.
WRITE_METHODS = (
    "add",
    "remove",
    "clear",
    "set",
    "create",
    "get_or_create",
    "update_or_create",
)


class ReadOnlyRelationError(TypeError):
    """Raised by a write through ``obj.audit_logs``: only the triggers write the log."""


def cached_content_type_id(using: str, app_label: str, model_name: str) -> int | None:
    """Return the content type id that ContentType's cache holds for ``using``, else None.

    Args:
        using: A database alias.
        app_label: The model's app label.
        model_name: The model's lower-case name.

    Returns:
        The id, or None when the cache of that database does not hold it.
    """
    # ContentTypeManager has no public "cached only" lookup: get_for_model()
    # queries on a miss. Its cache has been {alias: {(app_label, model): ct}}
    # for every supported Django; should that change, this finds nothing and
    # ContentTypeId falls back to its subquery, which is always right.
    cache = getattr(ContentType.objects, "_cache", None)
    per_database = cache.get(using) if isinstance(cache, dict) else None
    content_type = per_database.get((app_label, model_name)) if isinstance(per_database, dict) else None
    return content_type.pk if isinstance(content_type, ContentType) else None


class ContentTypeId(Expression):
    """The id of a model's content type, resolved in the statement that uses it.

    Compiled against the database the statement runs on: the id itself when
    that database's ContentType cache holds it, else a scalar subquery on
    ``(app_label, model)``, which the unique index answers once per statement.
    So a filter on ``content_type`` never costs a query of its own, and on
    several databases it always uses the id of the database it runs on. A
    content type missing from that database yields NULL and matches nothing,
    as there is no entry to find either (the triggers create the content type
    with the first entry).

    Args:
        app_label: The model's app label.
        model_name: The model's lower-case name (``ContentType.model``).
    """

    # One shared field, not one per instance: a Field costs more to build than
    # the rest of the expression, and obj.audit_logs builds one per query.
    output_field = IntegerField()

    def __init__(self, app_label: str, model_name: str) -> None:
        super().__init__()
        self.app_label = app_label
        self.model_name = model_name

    @classmethod
    def for_model(cls, model: type[Model] | Model, *, for_concrete_model: bool = True) -> ContentTypeId:
        """Return the expression for ``model`` (a class or an instance), as ``get_for_model`` would key it.

        Args:
            model: The model, or one of its instances.
            for_concrete_model: Use the concrete model of a proxy, like
                ``ContentType.objects.get_for_model``.

        Returns:
            The expression.
        """
        opts = model._meta
        if for_concrete_model and opts.concrete_model is not None:
            opts = opts.concrete_model._meta
        assert opts.model_name is not None  # set on every model class; None only in the stubs' type
        return cls(opts.app_label, opts.model_name)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.app_label!r}, {self.model_name!r})"

    def as_sql(self, compiler: SQLCompiler, connection: BaseDatabaseWrapper) -> tuple[str, tuple[Any, ...]]:
        """Return the cached id as a parameter, else the subquery that finds it."""
        # Decided here, not in resolve_expression(): only now is the database,
        # hence its cache, known, and a join's extra restriction
        # (get_extra_restriction) is built while compiling, never resolved.
        content_type_id = cached_content_type_id(connection.alias, self.app_label, self.model_name)
        if content_type_id is not None:
            return "%s", (content_type_id,)
        return content_type_subquery(connection, self.app_label, self.model_name)


#: Compiled subqueries by (database alias, app label, model name).
_SUBQUERIES: dict[tuple[str, str, str], tuple[str, tuple[Any, ...]]] = {}


def content_type_subquery(
    connection: BaseDatabaseWrapper, app_label: str, model_name: str
) -> tuple[str, tuple[Any, ...]]:
    """Return ``(SELECT id FROM django_content_type WHERE app_label = %s AND model = %s)`` and its parameters.

    Compiled by the ORM once per database and model, then reused: building
    the queryset cost more than the rest of a 50-entry fetch's query. It
    refers to nothing outside itself, so its table alias (the table's name)
    cannot capture a column of the statement around it.

    Args:
        connection: The connection the statement is compiled for.
        app_label: The model's app label.
        model_name: The model's lower-case name.

    Returns:
        The parenthesized SQL and its parameters.
    """
    key = (connection.alias, app_label, model_name)
    compiled = _SUBQUERIES.get(key)
    if compiled is None:
        query = ContentType._base_manager.filter(app_label=app_label, model=model_name).values("pk").query
        sql, params = query.get_compiler(connection=connection).as_sql()
        compiled = _SUBQUERIES[key] = (f"({sql})", tuple(params))
    return compiled


def _refuse(name: str) -> Callable[..., NoReturn]:
    """Return a manager method named ``name`` that raises :class:`ReadOnlyRelationError`."""

    def refuse(self: Any, *args: Any, **kwargs: Any) -> NoReturn:
        raise ReadOnlyRelationError(
            f"{type(self.instance).__name__}.{self.prefetch_cache_name} is read-only: audit log entries "
            f"are written by the database triggers, never through the relation ({name}() is not supported)."
        )

    refuse.__name__ = refuse.__qualname__ = name
    refuse.alters_data = True  # type: ignore[attr-defined]  # Django's flag: templates must never call it
    return refuse


def create_audit_logs_manager(superclass: type[Any], rel: GenericRel) -> type[Any]:
    """Return the class of ``obj.audit_logs``: Django's generic related manager, lazy and read-only.

    Args:
        superclass: The manager class to extend (the entry model's default
            manager's, or the one named in ``obj.audit_logs(manager=...)``).
        rel: The relation (``AuditLogsField.remote_field``).

    Returns:
        The manager class; instantiate it with the object whose log it reads.
    """
    # Typed Any: django-stubs type the factory's result as type[Any], not a base class.
    generic: Any = create_generic_related_manager(superclass, rel)
    field = rel.field

    class AuditLogsManager(generic):
        def __init__(self, instance: Model) -> None:
            # Not generic.__init__: it fetches the content type at once, a query
            # whenever ContentType's cache lacks it, only to build core_filters.
            # Set the same attributes, and look the content type up on demand.
            super(generic, self).__init__()
            self.instance = instance
            self.model = rel.model
            self.content_type_field_name = field.content_type_field_name
            self.object_id_field_name = field.object_id_field_name
            self.prefetch_cache_name = field.attname
            self.pk_val = instance.pk
            if conf.read_database:
                # Read at each obj.audit_logs (a new manager each time), so override_settings works.
                # Django's manager reads self._db in get_queryset() and its prefetch.
                self._db = log_read_database(instance)

        def __call__(self, *, manager: str) -> Any:
            # Django's version builds its own class, losing everything here.
            return create_audit_logs_manager(getattr(self.model, manager).__class__, rel)(self.instance)

        @cached_property
        def get_content_type(self) -> Callable[[Model], ContentType]:
            """Django's lookup of an object's content type, in the database ``instance`` came from.

            Only Django's prefetch (``get_prefetch_querysets``) calls it: it
            matches entries to objects by content type id in Python.
            """
            return functools.partial(
                ContentType.objects.db_manager(self.instance._state.db).get_for_model,
                for_concrete_model=field.for_concrete_model,
            )

        @cached_property
        def content_type(self) -> ContentType:
            """The object's content type (a query when ContentType's cache lacks it; reads never need it)."""
            return self.get_content_type(self.instance)

        @property
        def core_filters(self) -> dict[str, Any]:
            """The filters that select the object's entries (read by Django's ``_apply_rel_filters``)."""
            return {
                f"{self.content_type_field_name}__pk": ContentTypeId.for_model(
                    self.instance, for_concrete_model=field.for_concrete_model
                ),
                self.object_id_field_name: self.pk_val,
            }

        def state_at(self, when: datetime.datetime) -> Model | None:
            """Return the object as it was at ``when``, rebuilt from the log (see ``audit_log.history``).

            Returns:
                An unsaved instance (its ``_audit_state`` says what could not
                be rebuilt), or None if the object did not exist then.
            """
            from . import history  # imports the models

            state = history.state_at(type(self.instance), self.pk_val, when, using=self.instance._state.db)
            return state.instance if state is not None else None

        def revert(
            self,
            target: BaseLogEntry | datetime.datetime,
            *,
            performed_by: Any = None,
            context: Mapping[str, Any] | None = None,
        ) -> Reverted:
            """Bring the object back to its state before an entry, or as of a moment (``history.revert``).

            Returns:
                ``audit_log.history.Reverted``: its ``entry_id`` is the new entry.
            """
            from . import history

            return history.revert(target, obj=self.instance, performed_by=performed_by, context=context)

    for name in WRITE_METHODS:
        setattr(AuditLogsManager, name, _refuse(name))
        setattr(AuditLogsManager, f"a{name}", _refuse(f"a{name}"))
    return AuditLogsManager


class AuditLogsDescriptor(ReverseGenericManyToOneDescriptor):
    """``obj.audit_logs``: returns the manager of :func:`create_audit_logs_manager`."""

    @cached_property
    def related_manager_cls(self) -> type[Any]:
        """The manager class, built once per relation like Django's."""
        return create_audit_logs_manager(self.rel.model._default_manager.__class__, self.rel)  # type: ignore[arg-type]  # a GenericRel, typed as the base ManyToOneRel


class AuditLogsField(GenericRelation):
    """A reverse generic relation from an audited model to its log entries.

    ``AuditLoggedModel`` adds it as ``audit_logs``. It has no column, but
    unlike a plain ``GenericRelation`` it is a regular (non-private) field, so
    ``makemigrations`` writes it into migrations and the schema editor sees it
    being added or removed: that is what installs and removes the triggers.

    Redeclare it on a model to leave columns out of the log or to mask them::

        class Customer(AuditLoggedModel):
            audit_logs = AuditLogsField(exclude=["last_seen"], mask=["password"])

    The auto-created tables of the model's many-to-many fields are audited
    too, their rows logged under this model (see ``audit_log.m2m``), unless
    the field is named in ``m2m_exclude``.

    Args:
        to: The log-entry model; defaults to ``AUDIT_LOG_ENTRY_MODEL``.
        exclude: Field names (or column names) never logged: their changes
            alone write no entry.
        mask: Field names (or column names) whose changes are logged without
            their values (``"**masked**"``; NULL stays NULL).
        m2m_exclude: Names of the model's many-to-many fields whose links
            are not logged (their auto-created tables get no triggers).
        **kwargs: Passed to ``GenericRelation`` (``related_query_name`` ...).
    """

    def __init__(
        self,
        to: Any = None,
        *,
        exclude: Sequence[str] = (),
        mask: Sequence[str] = (),
        m2m_exclude: Sequence[str] = (),
        **kwargs: Any,
    ) -> None:
        kwargs["object_id_field"] = "object_id"
        kwargs["content_type_field"] = "content_type"
        super().__init__(to or conf.entry_model, **kwargs)
        if isinstance(exclude, str) or isinstance(mask, str) or isinstance(m2m_exclude, str):
            raise TypeError(
                "AuditLogsField(exclude=..., mask=..., m2m_exclude=...) take lists of field names, not a string"
            )
        self.exclude: tuple[str, ...] = tuple(exclude)
        self.mask: tuple[str, ...] = tuple(mask)
        self.m2m_exclude: tuple[str, ...] = tuple(m2m_exclude)

    def contribute_to_class(self, cls: type[Model], name: str, *args: Any, **kwargs: Any) -> None:
        """Attach the field to ``cls`` as a regular field (see the class docstring)."""
        if self._label() == UNSET_MODEL:
            # AUDIT_LOG_ENTRY_MODEL is not set (audit_log.E002 says so and how
            # to fix it). A relation to a placeholder would add Django's own
            # errors about a model nobody declared: keep the field, relate it
            # to nothing.
            Field.contribute_to_class(self, cls, name, private_only=False)
            self.model = cls
            return
        super().contribute_to_class(cls, name, *args, **kwargs)
        # GenericRelation registers itself as a private field, which migrations
        # ignore. Re-register it as a local field: it has no column (db_type is
        # None), so the schema editor creates nothing for it, but its addition
        # and removal now reach the schema editor, which manages the triggers.
        cls._meta.private_fields.remove(self)
        cls._meta.add_field(self, private=False)
        setattr(cls, self.name, AuditLogsDescriptor(self.remote_field))  # type: ignore[arg-type]  # a GenericRel; the stubs type the base ManyToOneRel

    def check(self, **kwargs: Any) -> list[Any]:
        """Run Django's checks of the relation, unless the log model is not configured (E002 covers it)."""
        if self._label() == UNSET_MODEL:
            return []
        return super().check(**kwargs)

    @property
    def swappable_setting(self) -> str | None:
        """Name ``AUDIT_LOG_ENTRY_MODEL`` when the field points at the configured log model.

        Like a foreign key to ``AUTH_USER_MODEL``: migrations then refer to the
        setting (``to=settings.AUDIT_LOG_ENTRY_MODEL`` and a swappable
        dependency), so an app's migrations work with any project's log model.
        """
        return ENTRY_MODEL_SETTING if self._label().lower() == conf.entry_model.lower() else None

    def _label(self) -> str:
        model = self.remote_field.model
        return model if isinstance(model, str) else model._meta.label

    def deconstruct(self) -> tuple[str, str, list[Any], dict[str, Any]]:
        """Describe the field for migrations: the entry model (by setting) and the audit options."""
        name = self.name
        label = self._label()
        setting = self.swappable_setting
        kwargs: dict[str, Any] = {"to": SettingsReference(label, setting) if setting else label.lower()}
        if self.exclude:
            kwargs["exclude"] = list(self.exclude)
        if self.mask:
            kwargs["mask"] = list(self.mask)
        if self.m2m_exclude:
            kwargs["m2m_exclude"] = list(self.m2m_exclude)
        if self.remote_field.related_query_name:
            kwargs["related_query_name"] = self.remote_field.related_query_name
        return name, "audit_log.fields.AuditLogsField", [], kwargs

    def get_extra_restriction(self, alias: str | None, remote_alias: str) -> WhereNode:
        """Restrict a join to the entries of this model's content type, without a query of its own.

        Django's version looks the content type up while the statement is
        compiled (a query whenever the cache lacks it) and in the default
        database's cache whatever database the statement runs on.
        """
        field = self.remote_field.model._meta.get_field(self.content_type_field_name)
        assert isinstance(field, ForeignKey)  # the GenericForeignKey's content type (contenttypes.E004 checks it)
        exact = field.get_lookup("exact")
        assert exact is not None  # a foreign key always has one (RelatedExact)
        content_type = ContentTypeId.for_model(self.model, for_concrete_model=self.for_concrete_model)
        where = WhereNode(connector=AND)
        where.add(exact(field.get_col(remote_alias), content_type), AND)
        return where

    def bulk_related_objects(self, objs: Iterable[Model], using: str = DEFAULT_DB_ALIAS) -> QuerySet[Any]:
        """Return nothing: deleting an audited object must never delete its log."""
        return self.remote_field.model._base_manager.db_manager(using).none()
