"""The data of a diff: what an entry changed, and the display rows a template shows.

Two kinds of frozen dataclasses, and no formatting:

* :class:`ColumnChange` and :class:`EntryDiff`, made by :func:`compute_diff`, a
  pure function of an entry's ``action`` and ``changes`` that knows nothing of
  models or the database.
* :class:`DisplayValue`, :class:`LinkDisplay`, :class:`JsonKeyRow`,
  :class:`JsonDiffDisplay`, :class:`DiffRow` and :class:`FormattedDiff`: what
  :class:`~audit_log_admin.diff.DiffFormatter` returns. They hold plain text
  and URLs; the templates escape all of it.

All are re-exported by :mod:`audit_log_admin.diff`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from audit_log.models import Action

from .word_diff import TextSegment, spaced_segments

# --- what an entry changed ----------------------------------------------------


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


# --- display rows -------------------------------------------------------------


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
