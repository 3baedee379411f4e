"""What every part of the diff formatter looks up: models, fields, the objects entries name, admin links.

:class:`FormatterBase` holds a formatter's request, admin site and per-page
caches, and the lookups the value, entry and text formatting share:

* the columns, fields, masked and excluded columns and many-to-many tables of
  an entry's model (:meth:`~FormatterBase.model_info`, computed once per
  content type, described by :class:`ModelInfo` and :class:`LinkInfo`);
* :meth:`~FormatterBase.prefetch`, which fetches the related objects foreign
  keys point to and the logged objects of a whole page of entries, one query
  per model, and the accessors that read them back;
* links to admin change pages the user may view (:meth:`~FormatterBase.admin_url`).

It formats nothing but a few plain strings (labels, ``str(obj)``, data shown
as stored). :class:`~audit_log_admin.diff.DiffFormatter` is the class to use
and subclass; this one is its base.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.contrib.admin.utils import quote
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ObjectDoesNotExist, ValidationError
from django.db import models
from django.urls import NoReverseMatch, reverse
from django.utils.text import capfirst
from django.utils.translation import ngettext

from audit_log.m2m import ThroughLink, auto_created_links
from audit_log.models import UndecodableJSON
from audit_log.sql import bare_name
from audit_log.triggers import audit_field, resolve_columns

from .diff_data import compute_diff
from .fallbacks import load_objects
from .json_diff import pretty_json
from .links import LinkChange, link_changes

if TYPE_CHECKING:
    from django.contrib.admin import AdminSite
    from django.http import HttpRequest

    from audit_log.models import BaseLogEntry


@dataclass(frozen=True)
class LinkInfo:
    """A many-to-many field whose table logs under the model: its table's key columns.

    Attributes:
        link: The field and its auto-created table.
        target: The table's foreign key to the related model.
        parent_column: The table's column that points to the model (bare name).
        target_column: The table's column that points to the related model (bare name).
    """

    link: ThroughLink
    target: models.ForeignKey[Any, Any]  # the table's foreign key to the related model
    parent_column: str
    target_column: str

    @classmethod
    def of(cls, link: ThroughLink) -> LinkInfo:
        """Describe the table of ``link``."""
        opts = link.through._meta
        target = opts.get_field(link.target_field_name)
        assert isinstance(target, models.ForeignKey)  # Django makes both columns of the table foreign keys
        parent = opts.get_field(link.parent_field_name)
        assert isinstance(parent, models.ForeignKey)
        parent_column = bare_name(str(parent.column))
        return cls(link=link, target=target, parent_column=parent_column, target_column=bare_name(str(target.column)))


@dataclass
class ModelInfo:
    """What the formatter needs to know about one audited model, computed once.

    Attributes:
        model: The model, or None if its content type (or model) is gone.
        fields: Its concrete fields, by column as entries record it.
        order: The position of each column among the fields, for sorting rows.
        masked: The columns whose values are masked in the log.
        excluded: The labels of the fields left out of the log.
        links: Its many-to-many tables, by table name (as entries record it).
    """

    model: type[models.Model] | None
    fields: dict[str, models.Field[Any, Any]] = field(default_factory=dict)
    order: dict[str, int] = field(default_factory=dict)
    masked: frozenset[str] = frozenset()
    excluded: tuple[str, ...] = ()
    links: dict[str, LinkInfo] = field(default_factory=dict)


class FormatterBase:
    """Look up what formatting log entries needs: models, fields, related and logged objects, admin links.

    Call :meth:`prefetch` with all the entries of a page before formatting them:
    it fetches every related object and logged object those entries name, one
    query per model.

    Args:
        request: The current request: links are only made to admin pages the
            user may view. Without it, no links are made.
        admin_site: The admin site whose pages are linked to.

    Attributes:
        raw_text_limit: How many characters of data shown as stored (changes
            or a context that cannot be read as usual) are shown.
    """

    raw_text_limit = 10_000

    def __init__(self, *, request: HttpRequest | None = None, admin_site: AdminSite | None = None) -> None:
        self.request = request
        self.admin_site = admin_site
        self.empty_value_display = admin_site.empty_value_display if admin_site is not None else "-"
        self._models: dict[int | None, ModelInfo] = {}
        # (related model, attname of the field pointed to, database) -> {value: object}
        self._related: dict[tuple[type[models.Model], str, str], dict[Any, models.Model]] = {}
        # (content type id, object_id) -> object or None (fetched, not found)
        self._objects: dict[tuple[int, str], models.Model | None] = {}
        # Rows that exist but could not be turned into model instances (values Python cannot hold ...).
        self._unloadable_related: dict[tuple[type[models.Model], str, str], set[Any]] = defaultdict(set)
        self._unloadable_objects: set[tuple[int, str]] = set()
        self._permissions: dict[type[models.Model], bool] = {}

    # -- models and fields --------------------------------------------------

    def content_type(self, entry: BaseLogEntry) -> ContentType | None:
        """Return the entry's content type, or None if it (or its row) is gone."""
        if entry.content_type_id is None:
            return None
        try:
            return entry.content_type  # select_related leaves None for a missing row
        except ObjectDoesNotExist:
            return None

    def model_info(self, entry: BaseLogEntry) -> ModelInfo:
        """Return the columns, fields and audit options of the entry's model (cached per content type)."""
        key = entry.content_type_id
        if key not in self._models:
            content_type = self.content_type(entry)
            model = content_type.model_class() if content_type is not None else None
            info = ModelInfo(model=model)
            if model is not None:
                for index, model_field in enumerate(model._meta.concrete_fields):
                    if model_field.column:
                        # Logged under the column's own name: '"Amount"' is logged as Amount.
                        column = bare_name(model_field.column)
                        info.fields[column] = model_field
                        info.order[column] = index
                audit = audit_field(model)
                if audit is not None:
                    info.masked = frozenset(resolve_columns(model, audit.mask)[0])
                    excluded = resolve_columns(model, audit.exclude)[0]
                    info.excluded = tuple(self.get_label(column, info.fields.get(column)) for column in excluded)
                # Also when no longer audited: older entries of the table are still links.
                info.links = {link.through._meta.db_table: LinkInfo.of(link) for link in auto_created_links(model)}
            self._models[key] = info
        return self._models[key]

    def is_link(self, entry: BaseLogEntry) -> bool:
        """Return True if the entry records a link of one of its model's many-to-many fields (its table's row)."""
        return entry.table_name in self.model_info(entry).links

    def get_label(self, column: str, model_field: models.Field[Any, Any] | None) -> str:
        """Return the label of a column: its field's label (see :func:`field_label`), else the column name."""
        if model_field is None:
            return column
        return field_label(model_field)

    # -- batching ------------------------------------------------------------

    def prefetch(self, entries: Iterable[BaseLogEntry], *, related: bool = True, objects: bool = False) -> None:
        """Fetch what formatting the entries needs, one query per model for all of them.

        Args:
            entries: The entries about to be formatted.
            related: Fetch the objects their foreign keys point to (for
                :meth:`format_entry`).
            objects: Fetch the logged objects themselves (for
                :meth:`format_object`).
        """
        wanted: dict[tuple[type[models.Model], str, str], set[Any]] = defaultdict(set)
        logged: dict[tuple[int, type[models.Model], str], set[str]] = defaultdict(set)
        for entry in entries:
            db = entry._state.db or "default"
            info = self.model_info(entry)
            if objects and info.model is not None and entry.content_type_id is not None:
                logged[(entry.content_type_id, info.model, db)].add(entry.object_id)
            if not related:
                continue
            if (link := info.links.get(entry.table_name)) is not None:
                for link_change in self.link_changes(entry, link) or ():
                    key = _related_key(link.target, link_change.target)
                    if key is not None:
                        wanted[_related_cache_key(link.target, db)].add(key)
                continue
            for change in compute_diff(entry.action, entry.changes).changes:
                model_field = info.fields.get(change.column)
                if model_field is None or not is_foreign_key(model_field) or change.column in info.masked:
                    continue
                for present, value in ((change.has_old, change.old), (change.has_new, change.new)):
                    key = _related_key(model_field, value) if present else None
                    if key is not None:
                        wanted[_related_cache_key(model_field, db)].add(key)
        for (related_model, attname, db), keys in wanted.items():
            cache = self._related.setdefault((related_model, attname, db), {})
            missing = keys - cache.keys() - self._unloadable_related[(related_model, attname, db)]
            if missing:
                found, unloadable = load_objects(related_model, attname, missing, db)
                cache.update(found)
                self._unloadable_related[(related_model, attname, db)].update(unloadable)
        for (content_type_id, model, db), ids in logged.items():
            by_key: dict[Any, str] = {}
            for object_id in ids:
                self._objects[(content_type_id, object_id)] = None  # until found
                # Text that is no primary key value of this model names no object.
                with contextlib.suppress(ValidationError, TypeError, ValueError):
                    by_key[model._meta.pk.to_python(object_id)] = object_id
            if not by_key:
                continue
            found, unloadable = load_objects(model, model._meta.pk.attname, set(by_key), db)
            for key, obj in found.items():
                self._objects[(content_type_id, by_key.get(key, str(key)))] = obj
            self._unloadable_objects.update((content_type_id, by_key.get(key, str(key))) for key in unloadable)

    def related_object(self, model_field: models.ForeignKey[Any, Any], value: Any, db: str) -> models.Model | None:
        """Return the prefetched object a foreign key value points to, or None."""
        cache = self._related.get(_related_cache_key(model_field, db), {})
        key = _related_key(model_field, value)
        return cache.get(key) if key is not None else None

    def related_unloadable(self, model_field: models.ForeignKey[Any, Any], value: Any, db: str) -> bool:
        """Return True if the object a foreign key value points to exists but could not be loaded."""
        key = _related_key(model_field, value)
        return key is not None and key in self._unloadable_related.get(_related_cache_key(model_field, db), ())

    def logged_object(self, entry: BaseLogEntry) -> models.Model | None:
        """Return the prefetched object an entry is about, or None if it no longer exists (or cannot be loaded)."""
        return self._objects.get((entry.content_type_id, entry.object_id)) if entry.content_type_id else None

    def object_unloadable(self, entry: BaseLogEntry) -> bool:
        """Return True if the entry's object exists but could not be loaded (see :func:`load_objects`)."""
        return (entry.content_type_id, entry.object_id) in self._unloadable_objects

    def object_text(self, obj: models.Model) -> str:
        """Return ``str(obj)``, or its model and primary key if its ``__str__`` fails."""
        try:
            return str(obj)
        except Exception:  # noqa: BLE001  # a __str__ that fails on odd data must not break the page
            return f"{capfirst(obj._meta.verbose_name)} {obj.pk}"

    def stored_text(self, value: Any) -> str:
        """Return JSON data as stored (pretty-printed if decoded), cut at ``raw_text_limit`` characters."""
        text = str(value) if isinstance(value, UndecodableJSON) else pretty_json(value)
        if len(text) <= self.raw_text_limit:
            return text
        rest = len(text) - self.raw_text_limit
        more = ngettext("%(count)d more character", "%(count)d more characters", rest) % {"count": rest}
        return f"{text[: self.raw_text_limit]}… ({more})"

    # -- many-to-many tables and admin links --------------------------------

    def link_changes(self, entry: BaseLogEntry, link: LinkInfo) -> tuple[LinkChange, ...] | None:
        """Return the links an entry of a many-to-many table added and removed (None: not readable as such)."""
        return link_changes(
            entry.action, entry.changes, parent_column=link.parent_column, target_column=link.target_column
        )

    def link_label(self, link: ThroughLink) -> str:
        """Return the label of a many-to-many field: its verbose name."""
        return str(capfirst(link.field.verbose_name))

    def admin_url(self, obj: models.Model) -> str:
        """Return the admin change page of ``obj`` if it is registered and the user may view it, else ""."""
        site, request = self.admin_site, self.request
        model = type(obj)
        if site is None or request is None or not site.is_registered(model):
            return ""
        if model not in self._permissions:
            self._permissions[model] = site.get_model_admin(model).has_view_or_change_permission(request)
        if not self._permissions[model]:
            return ""
        opts = model._meta
        try:
            return reverse(
                f"{site.name}:{opts.app_label}_{opts.model_name}_change",
                args=(quote(obj.pk),),
                current_app=site.name,
            )
        except NoReverseMatch:
            return ""


def field_label(model_field: models.Field[Any, Any]) -> str:
    """Return the label of a model field: its verbose name, capitalized, as the admin shows it.

    Except a field named ``id`` without a verbose name of its own: Django names
    the primary key it adds "ID", but derives "id" from the name of one a model
    declares (a UUID key), which would make the same column "ID" on one model
    and "Id" on another.
    """
    if model_field.name == "id" and str(model_field.verbose_name) == "id":
        return "ID"
    return str(capfirst(model_field.verbose_name))


def is_foreign_key(model_field: models.Field[Any, Any] | None) -> bool:
    """Return True if ``model_field`` is a concrete foreign key (or one-to-one field) to a model."""
    return bool(
        model_field is not None
        and model_field.is_relation
        and (model_field.many_to_one or model_field.one_to_one)
        and model_field.concrete
        and isinstance(model_field.related_model, type)
    )


def _related_key(model_field: models.Field[Any, Any], value: Any) -> Any:
    """Convert a stored foreign key value to the type of the field it points to, or None."""
    if value is None or isinstance(value, dict | list | bool):
        return None
    target = model_field.target_field  # type: ignore[attr-defined]
    try:
        return target.to_python(value)
    except (ValidationError, TypeError, ValueError):
        return None


def _related_cache_key(model_field: models.Field[Any, Any], db: str) -> tuple[type[models.Model], str, str]:
    """Key the related objects of a foreign key by their model, the field pointed to and the database."""
    return (model_field.related_model, model_field.target_field.attname, db)  # type: ignore[attr-defined, return-value]
