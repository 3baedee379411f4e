"""Readable diffs of log entries: pure data first, formatting second, escaping in the template.

Two layers:

* :func:`compute_diff`, :func:`~audit_log_admin.word_diff.word_diff` and
  :func:`~audit_log_admin.json_diff.json_diff` are pure functions of an
  entry's ``action`` and ``changes`` (or of two strings, or two JSON objects).
  They know nothing of models or the database and return frozen dataclasses.
* :class:`DiffFormatter` turns those into display rows: it maps columns to the
  model's fields and verbose names, fetches the related objects that foreign
  keys point to (one query per related model for a whole page of entries) and
  formats each kind of value in its own overridable method. Its output is plain
  text and URLs; the templates escape all of it, so nothing here is ever marked
  safe.

This module owns the formatting of an entry's changes into rows
(:meth:`DiffFormatter.format_entry` and its helpers) and is the one place to
import from. The rest lives beside it and is re-exported here:

* ``diff_data``: the dataclasses (:class:`ColumnChange`, :class:`EntryDiff`,
  :class:`DisplayValue`, :class:`DiffRow`, :class:`FormattedDiff` ...) and
  :func:`compute_diff`;
* ``formatter_base``: :class:`~audit_log_admin.formatter_base.FormatterBase`,
  the models, fields, prefetched objects and admin links every part looks up
  (and :func:`field_label`);
* ``value_format``: :class:`~audit_log_admin.value_format.ValueFormatMixin`,
  the ``format_*`` method per kind of value (and :func:`local_time`);
* ``entry_text``: :class:`~audit_log_admin.entry_text.EntryTextMixin`, who,
  which object, where from and a short summary of the fields an entry changed.

Subclass the formatter and name it in ``AUDIT_LOG_ADMIN_FORMATTER`` to change
how values look, e.g.::

    class MyFormatter(DiffFormatter):
        def format_boolean(self, field, value):
            return DisplayValue(text="on" if value else "off")
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from django.db import models
from django.utils.translation import gettext as _

from audit_log.models import Action, UndecodableJSON

from .diff_data import (
    ColumnChange,
    DiffRow,
    DisplayValue,
    EntryDiff,
    FormattedDiff,
    JsonDiffDisplay,
    JsonKeyRow,
    LinkDisplay,
    compute_diff,
)
from .entry_text import EntryTextMixin
from .formatter_base import LinkInfo, ModelInfo, field_label
from .json_diff import one_line, pretty_json
from .links import LinkChange
from .value_format import ValueFormatMixin, local_time
from .word_diff import TextSegment, word_diff

if TYPE_CHECKING:
    from audit_log.models import BaseLogEntry

__all__ = [
    "ColumnChange",
    "DiffFormatter",
    "DiffRow",
    "DisplayValue",
    "EntryDiff",
    "FormattedDiff",
    "JsonDiffDisplay",
    "JsonKeyRow",
    "LinkDisplay",
    "LinkInfo",
    "ModelInfo",
    "TextSegment",
    "compute_diff",
    "field_label",
    "local_time",
    "one_line",
    "pretty_json",
    "word_diff",
]


class DiffFormatter(EntryTextMixin, ValueFormatMixin):
    """Turn log entries into display rows; override one method per kind of value.

    This class formats an entry's changes into rows (:meth:`format_entry`,
    :meth:`format_entries`, the rows of many-to-many fields). The hooks it
    calls for each value (:meth:`format_boolean`, :meth:`format_foreign_key`,
    :meth:`format_choice` ...: one per kind of value, and the contract every
    one keeps) come from
    :class:`~audit_log_admin.value_format.ValueFormatMixin`; the descriptions
    of an entry that are not its diff (:meth:`format_user`,
    :meth:`format_object`, :meth:`format_context`, :meth:`summarize` ...) from
    :class:`~audit_log_admin.entry_text.EntryTextMixin`.

    Construct it with the current ``request`` and ``admin_site`` (see
    :class:`~audit_log_admin.formatter_base.FormatterBase`) and call
    :meth:`prefetch` with all the entries of a page before formatting them.

    The attributes a subclass may set to tune it are documented on the class
    that uses each: ``long_text_threshold``, ``max_diff_tokens``,
    ``binary_preview_bytes``, ``json_max_keys``, ``json_max_depth`` and
    ``json_value_limit`` on
    :class:`~audit_log_admin.value_format.ValueFormatMixin`,
    ``summary_fields`` on :class:`~audit_log_admin.entry_text.EntryTextMixin`,
    ``raw_text_limit`` on :class:`~audit_log_admin.formatter_base.FormatterBase`.
    """

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

    def format_links(self, entries: Sequence[BaseLogEntry]) -> list[DiffRow]:
        """Return one row per many-to-many field for entries of its tables: "+ added" and "- removed".

        An entry that does not read as links added or removed (a row moved to
        another object by raw SQL) gets a row of its own, its columns as stored.
        """
        changes: dict[str, list[LinkDisplay]] = {}
        infos: dict[str, LinkInfo] = {}
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

    def format_change(self, change: ColumnChange, info: ModelInfo, db: str) -> DiffRow:
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
