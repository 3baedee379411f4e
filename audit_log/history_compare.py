"""Compare a state rebuilt from the log with the object as it is now: what writing it back would change.

:func:`compare` reads, never writes: it answers a confirmation page ("these
fields will change") with exactly what :func:`audit_log.history_write.revert`
would write, because the writer decides by the same comparison
(:func:`compare_row`, PostgreSQL's ``IS DISTINCT FROM`` of the logged values
read as the table's columns, as the triggers compare).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.db import DataError, connections
from django.db.models import Model

from . import history, history_sql, sql, triggers
from .history import RevertConflict

if TYPE_CHECKING:
    from django.db.backends.utils import CursorWrapper


@dataclass(frozen=True)
class Difference:
    """What writing a state back would change; nothing is written (see :func:`compare`).

    Attributes:
        state: The state compared with the object.
        exists: True if the object's row is in its table; else writing the
            state back would insert it again.
        changed_columns: The columns the write would take from the log (those
            whose value differs from the row's), in the state's order.
        current_values: The row's values of ``changed_columns`` now, in the
            log's form (``to_jsonb``); empty if the row is not there.
        kept_columns: Columns that would be left as they are because the log
            cannot tell their value, and why.
        skipped_columns: Logged columns the table no longer has.
        m2m_added: Links the write would add, by many-to-many field.
        m2m_removed: Links it would remove.
    """

    state: history.AuditState
    exists: bool
    changed_columns: tuple[str, ...]
    current_values: dict[str, Any]
    kept_columns: dict[str, str]
    skipped_columns: tuple[str, ...]
    m2m_added: dict[str, frozenset[Any]]
    m2m_removed: dict[str, frozenset[Any]]

    def __bool__(self) -> bool:
        """True if writing the state back would change anything."""
        return bool(not self.exists or self.changed_columns or self.m2m_added or self.m2m_removed)


def compare(state: history.AuditState, *, key: Any = None) -> Difference:
    """Compare a state with the object as it is now, as :func:`revert` would before writing it back.

    Reads only (two or three queries, no lock), in a savepoint inside a
    transaction, so a failing comparison leaves the caller's transaction usable.

    Args:
        state: A state rebuilt from the log.
        key: The object's primary key now (default: the state's).

    Raises:
        RevertConflict: If a logged value no longer fits its column (``"type"``).
    """
    model = state.model._meta.concrete_model or state.model
    key = history.key_text(state.pk if key is None else key)
    try:
        with history._savepoint(state.using), connections[state.using].cursor() as cursor:
            columns, logged, skipped, current = row_difference(cursor, model, state, key, lock=False)
    except DataError as error:
        label = f"{model._meta.label} {key}"
        raise RevertConflict(
            "type", f"{label}: a logged value no longer fits its column: {first_line(error)}"
        ) from error
    differences = link_differences(model, state, key)
    return Difference(
        state=state,
        exists=current is not None,
        changed_columns=tuple(current) if current is not None else tuple(logged),
        current_values=current or {},
        kept_columns={c: reason for c, reason in state.unknown_columns.items() if c in columns}
        if current is not None
        else {},
        skipped_columns=skipped,
        m2m_added={link.field.name: add for link, add, _ in differences if add},
        m2m_removed={link.field.name: remove for link, _, remove in differences if remove},
    )


@dataclass(frozen=True)
class Column:
    """What writing a value back needs to know about one of the table's columns."""

    not_null: bool
    has_default: bool
    generated: bool
    comparable: bool


def table_columns(cursor: CursorWrapper, table: str) -> dict[str, Column]:
    """Return the table's columns as the database has them now (one query)."""
    cursor.execute(history_sql.TABLE_COLUMNS, [sql.quote_name(table)])
    return {
        name: Column(not_null, has_default, generated, triggers._is_comparable(sql_type))
        for name, not_null, has_default, generated, sql_type in cursor.fetchall()
    }


def row_difference(
    cursor: CursorWrapper, model: type[Model], state: history.AuditState, key: str, *, lock: bool
) -> tuple[dict[str, Column], list[str], tuple[str, ...], dict[str, Any] | None]:
    """Compare the state's known values with the object's row.

    Returns:
        The table's columns; the state's columns that can be written back
        (logged, known, still in the table, not generated); the logged
        columns the table no longer has; and the row's current values (log
        form) of the columns that differ, or None if the row is not there.
    """
    table, pk = model._meta.db_table, history.pk_column(model)
    pk_field = model._meta.pk
    assert pk_field is not None
    columns = table_columns(cursor, table)
    logged = [c for c in state.values if c in columns and not columns[c].generated and c not in state.unknown_columns]
    skipped = tuple(sorted(c for c in state.values if c not in columns))
    key_value = pk_field.get_db_prep_value(pk_field.to_python(key), cursor.db)
    query = history_sql.compare_row(table, pk, [(c, columns[c].comparable) for c in logged], lock=lock)
    cursor.execute(query, [state.values_json, key_value])
    row = cursor.fetchone()
    if row is None:
        return columns, logged, skipped, None
    current = history._decode(row[-1]) if not lock else {}
    differs = row[1 : 1 + len(logged)]
    return columns, logged, skipped, {c: current.get(c) for c, d in zip(logged, differs, strict=True) if d}


def link_differences(
    model: type[Model], state: history.AuditState, key: str
) -> list[tuple[history.Link, frozenset[Any], frozenset[Any]]]:
    """Return each audited many-to-many field with the links to add and to remove to get the state's set back.

    The object's sets now are those its log holds (one query), as the links
    are written back through the related managers, which log them.
    """
    found = [link for link in history.links(model) if link.field.name in state.m2m]
    if not found:
        return []
    reader = history._Reader(model, state.using, "through", history_sql.MAX_ID)
    life = reader.life(key)
    now = reader.link_sets(life, found, None) if life is not None else {}
    differences = []
    for link in found:
        current = now.get(link.field.name, frozenset())
        wanted = state.m2m[link.field.name]
        differences.append((link, wanted - current, current - wanted))
    return differences


def first_line(error: Exception) -> str:
    """Return the first line of an error's message (its type's name if it has none)."""
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
