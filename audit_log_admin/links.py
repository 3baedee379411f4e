"""Many-to-many links in the admin: what a link entry says, and how a History tab groups link entries.

Pure functions of entries (see :mod:`audit_log.m2m` for what the triggers
record): :func:`link_changes` reads one entry of an auto-created many-to-many
table as links added and removed; :func:`group_entries` puts the link entries
of a page with the object's own entry of the same transaction, so a save and
the links it changed read as one change.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from audit_log.models import Action

if TYPE_CHECKING:
    from audit_log.models import BaseLogEntry


@dataclass(frozen=True)
class LinkChange:
    """One link of a many-to-many field, added or removed.

    Attributes:
        added: True for a link added, False for one removed.
        target: The related object's key, as the trigger stored it.
    """

    added: bool
    target: Any


def link_changes(action: str, changes: Any, *, parent_column: str, target_column: str) -> tuple[LinkChange, ...] | None:
    """Read an entry of a many-to-many table as the links it added and removed.

    An INSERT adds the row's target, a DELETE removes it; an UPDATE that
    changes the target (raw SQL) removes the old one and adds the new.

    Args:
        action: The entry's action.
        changes: The entry's decoded ``changes`` (the link row, or its changed columns).
        parent_column: The table's column holding the key of the object the entry is logged under.
        target_column: The table's column holding the related object's key.

    Returns:
        The changes; None if ``changes`` says something else (an UPDATE that
        moved the row to another object, data of an unexpected shape): then it
        is shown column by column.
    """
    if not isinstance(changes, Mapping) or target_column not in changes:
        return None
    value = changes[target_column]
    if action == Action.UPDATE:
        if parent_column in changes or not (isinstance(value, list) and len(value) == 2):
            return None
        return (LinkChange(added=False, target=value[0]), LinkChange(added=True, target=value[1]))
    return (LinkChange(added=action != Action.DELETE, target=value),)


@dataclass
class EntryGroup:
    """Entries a History tab shows as one change: the object's own entry and the links changed with it.

    Attributes:
        own: The entry of the object's own row, if the group has one.
        links: Entries of its many-to-many tables, oldest first.
    """

    own: BaseLogEntry | None = None
    links: list[BaseLogEntry] = field(default_factory=list)

    @property
    def entry(self) -> BaseLogEntry:
        """The entry that stands for the group: the object's own, else the newest link."""
        if self.own is not None:
            return self.own
        return self.links[-1]

    @property
    def entries(self) -> list[BaseLogEntry]:
        """Every entry of the group, oldest first."""
        return sorted([*([self.own] if self.own is not None else []), *self.links], key=lambda entry: entry.pk)

    @property
    def action(self) -> str:
        """What the group did to the object: its own entry's action; links alone changed it."""
        return self.own.action if self.own is not None else Action.UPDATE


def group_entries(entries: Iterable[BaseLogEntry], is_link: Callable[[BaseLogEntry], bool]) -> list[EntryGroup]:
    """Group a page of one object's entries: each link entry joins an own entry of its transaction.

    Going from oldest to newest, link entries join the group of the own entry
    before them in the same transaction (a save, then ``save_m2m()``), or if
    there is none, the group the next own entry of the transaction joins (the
    links a deletion removes first); links changed with no own entry form a
    group of their own. Several own entries of one transaction stay separate
    rows. Only what is on the page is grouped: a transaction cut by a page
    boundary shows on both pages.

    Args:
        entries: The page's entries, in any order.
        is_link: Whether an entry is one of a many-to-many table.

    Returns:
        The groups, newest first (as the page lists entries).
    """
    groups: list[EntryGroup] = []
    for entry in sorted(entries, key=lambda entry: entry.pk):
        last = groups[-1] if groups else None
        same_transaction = last is not None and last.entry.transaction_id == entry.transaction_id
        if is_link(entry):
            if last is not None and same_transaction:
                last.links.append(entry)
            else:
                groups.append(EntryGroup(links=[entry]))
        elif last is not None and same_transaction and last.own is None:
            last.own = entry
        else:
            groups.append(EntryGroup(own=entry))
    groups.reverse()
    return groups
