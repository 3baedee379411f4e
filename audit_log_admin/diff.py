"""Readable diffs of log entries: pure data first, formatting second, escaping in the template.

Two layers:

* :func:`compute_diff`, :func:`~audit_log_admin.word_diff.word_diff` and
  :func:`~audit_log_admin.json_diff.json_diff` are pure functions of an
  entry's ``action`` and ``changes`` (or of two strings, or two JSON objects).
  They know nothing of models or the database and return frozen dataclasses;
  the last two live in modules of their own.
* :class:`DiffFormatter` turns those into display rows: it maps columns to the
  model's fields and verbose names, fetches the related objects that foreign
  keys point to (one query per related model for a whole page of entries) and
  formats each kind of value in its own overridable method. Its output is plain
  text and URLs; the templates escape all of it, so nothing here is ever marked
  safe.

Subclass the formatter and name it in ``AUDIT_LOG_ADMIN_FORMATTER`` to change
how values look, e.g.::

    class MyFormatter(DiffFormatter):
        def format_boolean(self, field, value):
            return DisplayValue(text="on" if value else "off")
"""

from __future__ import annotations

import contextlib
import datetime
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.contrib.admin.utils import quote
from django.contrib.contenttypes.models import ContentType
from django.contrib.postgres.fields import ArrayField
from django.core.exceptions import ObjectDoesNotExist, ValidationError
from django.db import models
from django.urls import NoReverseMatch, reverse
from django.utils import formats, timezone
from django.utils.text import capfirst
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from audit_log.m2m import ThroughLink, auto_created_links
from audit_log.models import HTTP_REQUEST, MANAGEMENT_COMMAND, Action, UndecodableJSON
from audit_log.sql import UNKNOWN_CONTEXT_TYPE, bare_name
from audit_log.triggers import audit_field, resolve_columns

from .fallbacks import load_objects
from .json_diff import json_diff, json_path, json_path_parts, one_line, pretty_json
from .links import LinkChange, link_changes
from .word_diff import TextSegment, spaced_segments, word_diff

if TYPE_CHECKING:
    from django.contrib.admin import AdminSite
    from django.http import HttpRequest

    from audit_log.models import BaseLogEntry

#: Options of every management command, left out of a command's one-line summary.
_COMMON_COMMAND_OPTIONS = frozenset(
    {"verbosity", "settings", "pythonpath", "traceback", "no_color", "force_color", "skip_checks"}
)


# --- pure data ----------------------------------------------------------------


@dataclass(frozen=True)
class ColumnChange:
    """What one entry recorded for one column.

    Attributes:
        column: The database column name, as the trigger wrote it.
        old: The value before the change (JSON form); meaningful if ``has_old``.
        new: The value after the change (JSON form); meaningful if ``has_new``.
        has_old: True for UPDATE and DELETE entries.
        has_new: True for UPDATE and INSERT entries.
    """

    column: str
    old: Any = None
    new: Any = None
    has_old: bool = False
    has_new: bool = False


@dataclass(frozen=True)
class EntryDiff:
    """The column changes of one entry, in the order ``changes`` holds them.

    Attributes:
        action: ``"INSERT"``, ``"UPDATE"`` or ``"DELETE"`` (anything else is
            treated like INSERT: values shown as new).
        changes: One item per column.
        malformed: True if ``changes`` did not have the shape the action
            implies (the parts that could be read are still in ``changes``).
    """

    action: str
    changes: tuple[ColumnChange, ...]
    malformed: bool = False


def compute_diff(action: str, changes: Any) -> EntryDiff:
    """Split an entry's ``changes`` into one :class:`ColumnChange` per column.

    INSERT records new values only, DELETE old values only, UPDATE
    ``[old, new]`` pairs. Never raises: data of an unexpected shape is kept as
    well as it can be and flagged ``malformed``.

    Args:
        action: The entry's action.
        changes: The entry's decoded ``changes``.

    Returns:
        The entry's diff.
    """
    if not isinstance(changes, Mapping):
        return EntryDiff(action=action, changes=(), malformed=changes is not None)
    malformed = False
    items = []
    for column, value in changes.items():
        if action == Action.UPDATE:
            if isinstance(value, list) and len(value) == 2:
                items.append(ColumnChange(str(column), old=value[0], new=value[1], has_old=True, has_new=True))
                continue
            malformed = True
            items.append(ColumnChange(str(column), new=value, has_new=True))
        elif action == Action.DELETE:
            items.append(ColumnChange(str(column), old=value, has_old=True))
        else:
            items.append(ColumnChange(str(column), new=value, has_new=True))
    return EntryDiff(action=action, changes=tuple(items), malformed=malformed)


# --- display data -------------------------------------------------------------


@dataclass(frozen=True)
class DisplayValue:
    """One value ready for a template (which escapes ``text``).

    Attributes:
        text: What to show.
        kind: What it is, for styling: ``"text"``, ``"empty"`` (NULL),
            ``"blank"`` (an empty string), ``"masked"``,
            ``"json"`` (pre-formatted), ``"boolean"``, ``"number"``,
            ``"datetime"``, ``"binary"``, ``"deleted"`` (a related object or
            user that no longer exists), ``"unloadable"`` (an object whose row
            exists but cannot be loaded), ``"raw"`` (shown as stored).
        url: A link for the value (an admin change page), or "".
        boolean: For ``kind="boolean"``: the value, so the template can show
            the admin's yes/no icon.
    """

    text: str
    kind: str = "text"
    url: str = ""
    boolean: bool | None = None


@dataclass(frozen=True)
class LinkDisplay:
    """One link of a many-to-many field added or removed, formatted.

    Attributes:
        added: True for a link added ("+"), False for one removed (a minus sign).
        value: The related object, as a foreign key to it is shown.
    """

    added: bool
    value: DisplayValue


@dataclass(frozen=True)
class JsonKeyRow:
    """One key of a JSON object change, formatted.

    Attributes:
        path: The key's path, dotted (``dimensions.width``).
        op: ``"added"``, ``"removed"``, ``"changed"`` or ``"equal"``.
        old: The value before as compact JSON ("" if the key was added).
        new: The value after as compact JSON ("" if the key was removed).
        parts: The keys of ``path`` as written in it, so a template can let
            a long path wrap after its dots.
    """

    path: str
    op: str
    old: str = ""
    new: str = ""
    parts: tuple[str, ...] = ()


@dataclass(frozen=True)
class JsonDiffDisplay:
    """The keys of a JSON object change: those that differ, and those that did not.

    Attributes:
        changed: Keys added, removed or changed, in path order.
        unchanged: Keys that kept their value (shown collapsed), in path order.
    """

    changed: tuple[JsonKeyRow, ...]
    unchanged: tuple[JsonKeyRow, ...] = ()


@dataclass(frozen=True)
class DiffRow:
    """One changed field of one entry, formatted.

    Attributes:
        column: The database column (a many-to-many field: its name).
        label: The field's verbose name (the column name if no field has it).
        old: The value before; None for INSERT entries.
        new: The value after; None for DELETE entries.
        segments: An inline word diff of a long text change (shown instead of
            old and new when not empty).
        note: An explanation, e.g. that the column is no longer on the model.
        links: The links of a many-to-many field added and removed (shown
            instead of old and new when not empty), added ones first, each by label.
        json: The keys of a JSON object that changed (shown instead of old
            and new when set).
    """

    column: str
    label: str
    old: DisplayValue | None
    new: DisplayValue | None
    segments: tuple[TextSegment, ...] = ()
    note: str = ""
    links: tuple[LinkDisplay, ...] = ()
    json: JsonDiffDisplay | None = None

    @property
    def spaced_segments(self) -> tuple[tuple[TextSegment, bool], ...]:
        """The word diff as ``(segment, gap_before)`` pairs: a removal and the insertion after it are kept apart."""
        return spaced_segments(self.segments)


@dataclass(frozen=True)
class FormattedDiff:
    """Everything a template shows of one entry's changes.

    Attributes:
        action: The entry's action.
        rows: One per recorded column, in the model's field order.
        not_logged: Labels of the model's fields excluded from the log.
        note: A warning about the entry's data (e.g. an unexpected shape).
        raw: ``changes`` as stored, when it is no JSON object of columns (or
            cannot be decoded): shown instead of rows.
    """

    action: str
    rows: tuple[DiffRow, ...]
    not_logged: tuple[str, ...] = ()
    note: str = ""
    raw: str = ""

    @property
    def shows_old(self) -> bool:
        """True if the entry has values before the change (UPDATE, DELETE)."""
        return self.action in (Action.UPDATE, Action.DELETE)

    @property
    def shows_new(self) -> bool:
        """True if the entry has values after the change (everything but DELETE)."""
        return self.action != Action.DELETE


@dataclass(frozen=True)
class _LinkInfo:
    """A many-to-many field whose table logs under the model: its table's key columns."""

    link: ThroughLink
    target: models.ForeignKey[Any, Any]  # the table's foreign key to the related model
    parent_column: str
    target_column: str

    @classmethod
    def of(cls, link: ThroughLink) -> _LinkInfo:
        opts = link.through._meta
        target = opts.get_field(link.target_field_name)
        assert isinstance(target, models.ForeignKey)  # Django makes both columns of the table foreign keys
        parent = opts.get_field(link.parent_field_name)
        assert isinstance(parent, models.ForeignKey)
        parent_column = bare_name(str(parent.column))
        return cls(link=link, target=target, parent_column=parent_column, target_column=bare_name(str(target.column)))


@dataclass
class _ModelInfo:
    """What the formatter needs to know about one audited model, computed once."""

    model: type[models.Model] | None
    fields: dict[str, models.Field[Any, Any]] = field(default_factory=dict)
    order: dict[str, int] = field(default_factory=dict)
    masked: frozenset[str] = frozenset()
    excluded: tuple[str, ...] = ()
    # Its many-to-many tables, by table name (as entries record it).
    links: dict[str, _LinkInfo] = field(default_factory=dict)


# --- formatting ---------------------------------------------------------------


class DiffFormatter:
    """Turn log entries into display rows; override one method per kind of value.

    The ``format_*`` value methods take the model field (None when the column
    is no longer on the model) and the value as the trigger stored it (the
    JSON form of PostgreSQL's ``to_jsonb``) and return a :class:`DisplayValue`.
    They may assume the value is neither NULL nor masked; :meth:`format_value`
    dispatches to them and must never raise, so every method falls back to
    :meth:`format_raw` on data it cannot read.

    Call :meth:`prefetch` with all the entries of a page before formatting them:
    it fetches every related object and logged object those entries name, one
    query per model.

    Args:
        request: The current request: links are only made to admin pages the
            user may view. Without it, no links are made.
        admin_site: The admin site whose pages are linked to.

    Attributes:
        long_text_threshold: Changes of strings at least this long (or
            spanning lines) get an inline word diff; ``TextField`` changes
            always do.
        max_diff_tokens: Longer texts are shown whole, not diffed.
        summary_fields: How many field names a short summary lists.
        binary_preview_bytes: How many bytes of a binary value are shown.
        raw_text_limit: How many characters of data shown as stored (changes
            or a context that cannot be read as usual) are shown.
        json_max_keys: JSON objects with more keys than this (nested ones
            counted) are shown whole, side by side, not key by key.
        json_max_depth: Objects nested deeper than this are compared as
            whole values in a key-by-key diff.
        json_value_limit: How many characters of one key's value a key-by-key
            diff shows.
    """

    long_text_threshold = 60
    max_diff_tokens = 4_000
    summary_fields = 3
    binary_preview_bytes = 16
    raw_text_limit = 10_000
    json_max_keys = 500
    json_max_depth = 6
    json_value_limit = 1_000

    def __init__(self, *, request: HttpRequest | None = None, admin_site: AdminSite | None = None) -> None:
        self.request = request
        self.admin_site = admin_site
        self.empty_value_display = admin_site.empty_value_display if admin_site is not None else "-"
        self._models: dict[int | None, _ModelInfo] = {}
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

    def model_info(self, entry: BaseLogEntry) -> _ModelInfo:
        """Return the columns, fields and audit options of the entry's model (cached per content type)."""
        key = entry.content_type_id
        if key not in self._models:
            content_type = self.content_type(entry)
            model = content_type.model_class() if content_type is not None else None
            info = _ModelInfo(model=model)
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
                info.links = {link.through._meta.db_table: _LinkInfo.of(link) for link in auto_created_links(model)}
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
                if model_field is None or not _is_foreign_key(model_field) or change.column in info.masked:
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

    # -- links ----------------------------------------------------------------

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

    # -- entries --------------------------------------------------------------

    def format_entry(self, entry: BaseLogEntry) -> FormattedDiff:
        """Return the formatted diff of one entry (call :meth:`prefetch` first).

        ``changes`` that are no JSON object (or could not be decoded) are
        shown as stored, with a note. An entry of a many-to-many table is
        one row: the field, and the link added or removed.
        """
        info = self.model_info(entry)
        if entry.table_name in info.links and isinstance(entry.changes, Mapping):
            return FormattedDiff(action=entry.action, rows=tuple(self.format_links([entry])))
        if entry.changes is not None and not isinstance(entry.changes, Mapping):
            if isinstance(entry.changes, UndecodableJSON):
                note = _("The recorded changes could not be decoded (too deep, or a number too long); shown as stored.")
            else:
                note = _("The recorded changes are not a JSON object of columns; shown as stored.")
            return FormattedDiff(
                action=entry.action, rows=(), not_logged=info.excluded, note=note, raw=self.stored_text(entry.changes)
            )
        diff = compute_diff(entry.action, entry.changes)
        db = entry._state.db or "default"
        rows = [self.format_change(change, info, db) for change in diff.changes]
        rows.sort(key=lambda row: (info.order.get(row.column, len(info.order)), row.column))
        note = _("Some recorded data has an unexpected shape and is shown as stored.") if diff.malformed else ""
        return FormattedDiff(action=entry.action, rows=tuple(rows), not_logged=info.excluded, note=note)

    def format_entries(self, entries: Sequence[BaseLogEntry]) -> FormattedDiff:
        """Return one diff for an object's own entry and the link entries of its transaction.

        For a History tab row (see :func:`audit_log_admin.links.group_entries`):
        the own entry's rows, then one row per many-to-many field. Links
        changed without an own entry are a change of the object.

        Args:
            entries: At most one entry of the object's own table, and entries
                of its many-to-many tables.

        Returns:
            The diff, with the own entry's action (UPDATE without one).
        """
        own = [entry for entry in entries if not self.is_link(entry)]
        links = [entry for entry in entries if self.is_link(entry)]
        if not own:
            return FormattedDiff(action=Action.UPDATE, rows=tuple(self.format_links(links)))
        diff = self.format_entry(own[0])
        if not links or diff.raw:
            return diff
        return replace(diff, rows=(*diff.rows, *self.format_links(links)))

    def link_changes(self, entry: BaseLogEntry, link: _LinkInfo) -> tuple[LinkChange, ...] | None:
        """Return the links an entry of a many-to-many table added and removed (None: not readable as such)."""
        return link_changes(
            entry.action, entry.changes, parent_column=link.parent_column, target_column=link.target_column
        )

    def format_links(self, entries: Sequence[BaseLogEntry]) -> list[DiffRow]:
        """Return one row per many-to-many field for entries of its tables: "+ added" and "- removed".

        An entry that does not read as links added or removed (a row moved to
        another object by raw SQL) gets a row of its own, its columns as stored.
        """
        changes: dict[str, list[LinkDisplay]] = {}
        infos: dict[str, _LinkInfo] = {}
        odd: list[DiffRow] = []
        for entry in sorted(entries, key=lambda entry: entry.pk):
            link = self.model_info(entry).links[entry.table_name]
            name = link.link.field.name
            infos[name] = link
            found = self.link_changes(entry, link)
            if found is None:
                note = _("Recorded as stored: the link was not added or removed.")
                odd.append(
                    DiffRow(
                        column=name,
                        label=self.link_label(link.link),
                        old=None,
                        new=self.format_raw(entry.changes),
                        note=note,
                    )
                )
                continue
            db = entry._state.db or "default"
            changes.setdefault(name, []).extend(
                LinkDisplay(added=change.added, value=self.format_link(link.target, change, db=db)) for change in found
            )
        rows = [
            DiffRow(
                column=name,
                label=self.link_label(infos[name].link),
                old=None,
                new=None,
                # Added first, then removed, each by label (one statement adds links in no set order).
                links=tuple(sorted(items, key=lambda item: (not item.added, item.value.text.casefold()))),
            )
            for name, items in changes.items()
        ]
        return rows + odd

    def link_label(self, link: ThroughLink) -> str:
        """Return the label of a many-to-many field: its verbose name."""
        return str(capfirst(link.field.verbose_name))

    def format_link(self, model_field: models.ForeignKey[Any, Any], change: LinkChange, *, db: str) -> DisplayValue:
        """Show the related object of a link added or removed, as a foreign key to it is shown.

        Args:
            model_field: The many-to-many table's foreign key to the related model.
            change: The link.
            db: The database the entry was read from.
        """
        if change.target is None:
            return self.format_null(model_field)
        return self.format_foreign_key(model_field, change.target, db=db)

    def format_change(self, change: ColumnChange, info: _ModelInfo, db: str) -> DiffRow:
        """Return the display row of one column change."""
        model_field = info.fields.get(change.column)
        masked = change.column in info.masked
        old = self.format_value(model_field, change.old, masked=masked, db=db) if change.has_old else None
        new = self.format_value(model_field, change.new, masked=masked, db=db) if change.has_new else None
        segments: tuple[TextSegment, ...] = ()
        json_keys: JsonDiffDisplay | None = None
        if change.has_old and change.has_new and not masked:
            segments = self.format_text_change(model_field, change.old, change.new) or ()
            if not segments:
                try:
                    json_keys = self.format_json_change(model_field, change.old, change.new)
                except Exception:  # noqa: BLE001  # an override failing on odd data must not break the page
                    json_keys = None
        note = ""
        if model_field is None and info.model is not None:
            note = _("No longer a field of %(model)s.") % {"model": info.model._meta.verbose_name}
        return DiffRow(
            column=change.column,
            label=self.get_label(change.column, model_field),
            old=old,
            new=new,
            segments=segments,
            note=note,
            json=json_keys,
        )

    def summarize(self, entry: BaseLogEntry) -> str:
        """Return a short summary of an entry's changes: the labels of its first few fields."""
        if isinstance(entry.changes, UndecodableJSON):
            return _("(changes could not be decoded)")
        if entry.changes is not None and not isinstance(entry.changes, Mapping):
            return _("(changes are not a JSON object)")
        info = self.model_info(entry)
        if (link := info.links.get(entry.table_name)) is not None:
            found = self.link_changes(entry, link) or ()
            names = {"field": self.link_label(link.link)}
            if [change.added for change in found] == [True]:
                return _("%(field)s: link added") % names
            if [change.added for change in found] == [False]:
                return _("%(field)s: link removed") % names
            return _("%(field)s: link changed") % names
        diff = compute_diff(entry.action, entry.changes)
        columns = sorted((c.column for c in diff.changes), key=lambda c: (info.order.get(c, len(info.order)), c))
        labels = [self.get_label(column, info.fields.get(column)) for column in columns]
        if len(labels) <= self.summary_fields:
            return ", ".join(labels)
        rest = len(labels) - self.summary_fields
        return ngettext("%(fields)s and %(count)d more", "%(fields)s and %(count)d more", rest) % {
            "fields": ", ".join(labels[: self.summary_fields]),
            "count": rest,
        }

    # -- values -----------------------------------------------------------------

    def format_value(
        self, model_field: models.Field[Any, Any] | None, value: Any, *, masked: bool = False, db: str = "default"
    ) -> DisplayValue:
        """Format one stored value by dispatching on the kind of field; never raises.

        Args:
            model_field: The field the column belongs to, or None if no field
                of the model has the column any more.
            value: The stored value.
            masked: True if the column is masked.
            db: The database the entry was read from (related objects live there).

        Returns:
            The display value.
        """
        try:
            if masked and value is not None:
                return self.format_masked(model_field, value)
            if value is None:
                return self.format_null(model_field)
            if model_field is None:
                return self.format_missing_column(value)
            if _is_foreign_key(model_field):
                return self.format_foreign_key(model_field, value, db=db)  # type: ignore[arg-type]  # checked
            if model_field.choices:
                return self.format_choice(model_field, value)
            if isinstance(model_field, models.BooleanField):
                return self.format_boolean(model_field, value)
            if isinstance(model_field, models.DateTimeField):
                return self.format_datetime(model_field, value)
            if isinstance(model_field, models.DateField):
                return self.format_date(model_field, value)
            if isinstance(model_field, models.TimeField):
                return self.format_time(model_field, value)
            if isinstance(model_field, models.DecimalField | models.FloatField | models.IntegerField):
                return self.format_number(model_field, value)
            if isinstance(model_field, models.JSONField):
                return self.format_json(model_field, value)
            if isinstance(model_field, ArrayField):
                return self.format_array(model_field, value, db=db)
            if isinstance(model_field, models.BinaryField):
                return self.format_binary(model_field, value)
            if isinstance(model_field, models.CharField | models.TextField):
                return self.format_text(model_field, value)
            return self.format_other(model_field, value)
        except Exception:  # noqa: BLE001  # a value the hooks cannot read must not break the page
            return self.format_raw(value)

    def format_raw(self, value: Any) -> DisplayValue:
        """Show a value as stored: strings as they are (an empty one as such), anything else as JSON."""
        if isinstance(value, str) and not value:
            return self.format_empty_string(None)
        if isinstance(value, str):
            return DisplayValue(text=value, kind="raw")
        return DisplayValue(text=pretty_json(value), kind="json" if isinstance(value, dict | list) else "raw")

    def format_null(self, model_field: models.Field[Any, Any] | None) -> DisplayValue:
        """Show NULL as the admin's empty value."""
        return DisplayValue(text=self.empty_value_display, kind="empty")

    def format_empty_string(self, model_field: models.Field[Any, Any] | None) -> DisplayValue:
        """Show an empty string as a muted "empty", so it is not mistaken for NULL (the admin's empty value)."""
        return DisplayValue(text=_("empty"), kind="blank")

    def format_masked(self, model_field: models.Field[Any, Any] | None, value: Any) -> DisplayValue:
        """Show a masked column: the value was never recorded, only that it changed."""
        return DisplayValue(text=_("hidden"), kind="masked")

    def format_missing_column(self, value: Any) -> DisplayValue:
        """Show the value of a column that no field of the model has any more."""
        return self.format_raw(value)

    def format_foreign_key(self, model_field: models.ForeignKey[Any, Any], value: Any, *, db: str) -> DisplayValue:
        """Show a foreign key as the related object's ``str()``, linked to its admin page."""
        obj = self.related_object(model_field, value, db)
        if obj is None:
            related = model_field.related_model._meta
            names = {"model": capfirst(related.verbose_name), "id": value}
            if self.related_unloadable(model_field, value, db):
                return DisplayValue(text=_("%(model)s %(id)s (could not be loaded)") % names, kind="unloadable")
            return DisplayValue(text=_("%(model)s %(id)s (deleted)") % names, kind="deleted")
        return DisplayValue(text=self.object_text(obj), url=self.admin_url(obj))

    def format_choice(self, model_field: models.Field[Any, Any], value: Any) -> DisplayValue:
        """Show a choice as its label (the stored value if it is no longer a choice)."""
        if isinstance(value, Mapping | list):
            return self.format_raw(value)  # no choice, and to_python() would str() it recursively
        python_value = model_field.to_python(value)
        for choice, label in model_field.flatchoices:
            if choice == python_value:
                return DisplayValue(text=str(label))
        return self.format_raw(value)

    def format_boolean(self, model_field: models.Field[Any, Any], value: Any) -> DisplayValue:
        """Show a boolean as the admin does (a yes/no icon, "Yes"/"No" as its text)."""
        if not isinstance(value, bool):
            return self.format_raw(value)
        return DisplayValue(text=_("Yes") if value else _("No"), kind="boolean", boolean=value)

    def format_datetime(self, model_field: models.Field[Any, Any], value: Any) -> DisplayValue:
        """Show a timestamp in the current time zone and the admin's format."""
        moment = datetime.datetime.fromisoformat(value)  # "infinity" or a BC date: ValueError, shown raw
        return DisplayValue(text=str(formats.localize(local_time(moment))), kind="datetime")

    def format_date(self, model_field: models.Field[Any, Any], value: Any) -> DisplayValue:
        """Show a date in the admin's format."""
        return DisplayValue(text=str(formats.localize(datetime.date.fromisoformat(value))), kind="datetime")

    def format_time(self, model_field: models.Field[Any, Any], value: Any) -> DisplayValue:
        """Show a time of day in the admin's format."""
        return DisplayValue(text=str(formats.localize(datetime.time.fromisoformat(value))), kind="datetime")

    def format_number(self, model_field: models.Field[Any, Any], value: Any) -> DisplayValue:
        """Show a number in the admin's format (decimals with the field's decimal places)."""
        if isinstance(value, bool) or not isinstance(value, int | Decimal | float):
            return self.format_raw(value)  # "NaN", "Infinity"
        places = model_field.decimal_places if isinstance(model_field, models.DecimalField) else None
        return DisplayValue(text=formats.number_format(value, places), kind="number")

    def format_json(self, model_field: models.Field[Any, Any], value: Any) -> DisplayValue:
        """Show a JSON value pretty-printed."""
        return DisplayValue(text=pretty_json(value), kind="json")

    def format_array(self, model_field: ArrayField[Any, Any], value: Any, *, db: str = "default") -> DisplayValue:
        """Show an array as its items, each formatted like its base field, separated by commas."""
        if not isinstance(value, list) or any(isinstance(item, list) for item in value):
            return self.format_raw(value)
        return DisplayValue(
            text=", ".join(self.format_value(model_field.base_field, item, db=db).text for item in value)
        )

    def format_binary(self, model_field: models.Field[Any, Any], value: Any) -> DisplayValue:
        """Show binary data as its size and first bytes (PostgreSQL stores a backslash, ``x`` and hex digits)."""
        if not (isinstance(value, str) and value.startswith("\\x")):
            return self.format_raw(value)
        hex_digits = value[2:]
        size = len(hex_digits) // 2
        preview = hex_digits[: self.binary_preview_bytes * 2]
        more = "…" if size > self.binary_preview_bytes else ""
        text = ngettext("%(size)d byte", "%(size)d bytes", size) % {"size": size}
        return DisplayValue(text=f"{text}: {preview}{more}" if preview else text, kind="binary")

    def format_text(self, model_field: models.Field[Any, Any], value: Any) -> DisplayValue:
        """Show text as it is (an empty string as such, an array or object as stored)."""
        if isinstance(value, Mapping | list) or (isinstance(value, str) and not value):
            return self.format_raw(value)
        return DisplayValue(text=value if isinstance(value, str) else str(value))

    def format_other(self, model_field: models.Field[Any, Any], value: Any) -> DisplayValue:
        """Show a value of any other field type (UUID, duration, range ...) as stored."""
        return self.format_raw(value)

    def format_text_change(
        self, model_field: models.Field[Any, Any] | None, old: Any, new: Any
    ) -> tuple[TextSegment, ...] | None:
        """Return an inline word diff for a change of long text, or None to show old and new side by side.

        Text fields (``TextField``) always get one; other strings when either
        side is at least ``long_text_threshold`` characters or spans lines.
        Not when one side is empty: all struck or all new text would hide that
        the other side is an empty string, which side by side shows.
        """
        if not (isinstance(old, str) and isinstance(new, str)) or not old or not new:
            return None
        if model_field is not None and (
            model_field.choices or not isinstance(model_field, models.CharField | models.TextField)
        ):
            return None
        long_text = isinstance(model_field, models.TextField)
        if not long_text and max(len(old), len(new)) < self.long_text_threshold and "\n" not in old + new:
            return None
        return word_diff(old, new, max_tokens=self.max_diff_tokens)

    def format_json_change(
        self, model_field: models.Field[Any, Any] | None, old: Any, new: Any
    ) -> JsonDiffDisplay | None:
        """Return the keys of a JSON object that changed, or None to show old and new side by side.

        For ``JSONField`` columns (and columns no field has any more) whose
        values before and after are both objects: keys added, removed and
        changed, nested objects by path (``dimensions.width``), values as
        compact JSON; unchanged keys apart, to be shown collapsed. Lists,
        scalars and objects too big to list (``json_max_keys``) are shown
        side by side.
        """
        if model_field is not None and not isinstance(model_field, models.JSONField):
            return None
        keys = json_diff(old, new, max_keys=self.json_max_keys, max_depth=self.json_max_depth)
        if keys is None:
            return None
        rows = [
            JsonKeyRow(
                path=json_path(key.path),
                parts=json_path_parts(key.path),
                op=key.op,
                old="" if key.op == "added" else self.json_value_text(key.old),
                new="" if key.op == "removed" else self.json_value_text(key.new),
            )
            for key in keys
        ]
        return JsonDiffDisplay(
            changed=tuple(row for row in rows if row.op != "equal"),
            unchanged=tuple(row for row in rows if row.op == "equal"),
        )

    def json_value_text(self, value: Any) -> str:
        """Return one value of a key-by-key JSON diff as compact JSON, cut at ``json_value_limit`` characters."""
        text = pretty_json(value, indent=None)
        if len(text) <= self.json_value_limit:
            return text
        rest = len(text) - self.json_value_limit
        more = ngettext("%(count)d more character", "%(count)d more characters", rest) % {"count": rest}
        return f"{text[: self.json_value_limit]}… ({more})"

    # -- who, what, where -----------------------------------------------------

    def format_user(self, entry: BaseLogEntry) -> DisplayValue:
        """Show who made the change: linked to the user's admin page while the user exists."""
        if entry.performed_by_id is None:
            return DisplayValue(
                text=entry.performed_by_label or self.empty_value_display,
                kind="empty" if not entry.performed_by_label else "text",
            )
        try:
            user = entry.performed_by  # select_related leaves None for a deleted user
        except ObjectDoesNotExist:
            user = None
        if user is None:
            label = entry.performed_by_label or f"#{entry.performed_by_id}"
            return DisplayValue(text=_("%(user)s (deleted user)") % {"user": label}, kind="deleted")
        return DisplayValue(text=entry.performed_by_label or str(user), url=self.admin_url(user))

    def format_object(self, entry: BaseLogEntry) -> DisplayValue:
        """Show the logged object: its ``str()`` linked to its admin page, or a label if it is gone.

        Needs ``prefetch(entries, objects=True)``.
        """
        obj = self.logged_object(entry)
        if obj is not None:
            return DisplayValue(text=self.object_text(obj), url=self.admin_url(obj))
        info = self.model_info(entry)
        name = capfirst(info.model._meta.verbose_name) if info.model is not None else entry.table_name
        names = {"model": name, "id": entry.object_id}
        if self.object_unloadable(entry):
            return DisplayValue(text=_("%(model)s %(id)s (could not be loaded)") % names, kind="unloadable")
        return DisplayValue(text=_("%(model)s %(id)s (deleted)") % names, kind="deleted")

    def format_model(self, entry: BaseLogEntry) -> str:
        """Name the entry's model (the table name if the model is gone)."""
        info = self.model_info(entry)
        if info.model is not None:
            return str(capfirst(info.model._meta.verbose_name))
        return entry.table_name

    def format_context(self, entry: BaseLogEntry) -> str:
        """Summarize where a change came from in one line.

        Requests show their method and path, management commands their name,
        arguments and options, changes without a context the database user and
        application, other contexts their top-level values.
        """
        if isinstance(entry.context, UndecodableJSON):
            return _("(context could not be decoded)")
        context = entry.context if isinstance(entry.context, Mapping) else {}
        # one_line(): a value of any shape (nested lists from raw SQL ...) becomes text without recursion.
        if entry.context_type == HTTP_REQUEST:
            return " ".join(one_line(context.get(key) or "") for key in ("method", "path")).strip()
        if entry.context_type == MANAGEMENT_COMMAND:
            args, kwargs = context.get("args"), context.get("kwargs")
            words = [one_line(context.get("command") or "")]
            words += [one_line(arg) for arg in args] if isinstance(args, list) else []
            if isinstance(kwargs, Mapping):
                # Options given (not None or False), without the ones every command has.
                words += [
                    str(key) if value is True else f"{key}={one_line(value)}"
                    for key, value in sorted(kwargs.items())
                    if key not in _COMMON_COMMAND_OPTIONS and value is not None and value is not False
                ]
            return " ".join(words).strip()
        if entry.context_type == UNKNOWN_CONTEXT_TYPE:
            parts = [one_line(context.get("db_user") or "")]
            if context.get("application_name"):
                parts.append(f"({one_line(context['application_name'])})")
            return " ".join(parts).strip()
        return ", ".join(f"{key}: {value}" for key, value in context.items() if not isinstance(value, dict | list))

    def format_context_json(self, entry: BaseLogEntry) -> tuple[str, str]:
        """Return the entry's whole context as pretty-printed JSON, and a note if it is shown as stored."""
        if entry.context is None:
            return "", ""
        if isinstance(entry.context, UndecodableJSON):
            note = _("The context could not be decoded (nested too deeply, or a number too long); shown as stored.")
            return self.stored_text(entry.context), note
        return pretty_json(entry.context), ""


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


def local_time(moment: datetime.datetime) -> datetime.datetime:
    """Return ``moment`` in the current time zone, as templates show it (naive times are left alone)."""
    if settings.USE_TZ and timezone.is_aware(moment):
        return timezone.localtime(moment)
    return moment


def _is_foreign_key(model_field: models.Field[Any, Any] | None) -> bool:
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
