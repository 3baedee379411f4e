"""Revert and restore: write a state rebuilt from the log back, as ordinary, logged writes.

Both run in one transaction (a savepoint inside the caller's), inside an
``audit_context`` (``"revert"`` or ``"restore"``), so what they write is
logged by the triggers like any change, with the entry they undo in the
context. The row is written by one statement from the logged values
(``jsonb_populate_record()``: PostgreSQL converts them back exactly as
``to_jsonb()`` wrote them): an UPDATE of only the columns that differ, or an
INSERT with the old primary key. Many-to-many sets are brought back through
the related managers (so the link tables log the links), and only the
differences are written.

Anything that would be half-written is refused with :class:`RevertConflict`
and rolled back: a referenced row that is gone (checked first, and locked
``FOR KEY SHARE`` until the transaction ends), a unique constraint, a NOT NULL
column the log has no value for and no default fills, a value the column's
type no longer takes. When the call owns the transaction, deferred
constraints are checked before it commits too.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.db import DataError, IntegrityError, connections, transaction
from django.db.models import ForeignKey, Model, QuerySet

from . import history, history_sql, sql, triggers
from .context import audit_context
from .history_compare import Difference, compare, first_line, link_differences, row_difference
from .loading import get_log_entry_model
from .models import RESTORE, REVERT
from .routing import primary_database

if TYPE_CHECKING:
    from django.db.backends.utils import CursorWrapper

    from .models import BaseLogEntry

RevertConflict = history.RevertConflict

_SQLSTATES = {"23505": "unique", "23503": "foreign-key", "23502": "not-null"}


@dataclass(frozen=True)
class Reverted:
    """What a revert or restore wrote.

    Attributes:
        model: The model.
        pk: The object's primary key after the write.
        action: ``"UPDATE"``, ``"INSERT"``, or None when the row already held
            the values (many-to-many links may still have been written).
        instance: The object as it is now, read back from the table.
        state: The state written back.
        changed_columns: The columns the UPDATE (or INSERT) took from the log.
        kept_columns: Columns left as they were because the log cannot tell
            their value (masked, excluded, not logged, not convertible), and why.
        skipped_columns: Logged columns the table no longer has.
        defaulted_columns: Columns an INSERT did not take from the log (their
            default, or NULL).
        m2m_added: Links added back, by many-to-many field.
        m2m_removed: Links removed, by many-to-many field.
        context_id: The ``context_id`` of every entry the write logged.
        entry_id: The entry logging the row's UPDATE or INSERT (None if none).
        using: The database alias.
    """

    model: type[Model]
    pk: Any
    action: str | None
    instance: Model
    state: history.AuditState
    changed_columns: tuple[str, ...]
    kept_columns: dict[str, str]
    skipped_columns: tuple[str, ...]
    defaulted_columns: tuple[str, ...]
    m2m_added: dict[str, frozenset[Any]]
    m2m_removed: dict[str, frozenset[Any]]
    context_id: uuid.UUID
    entry_id: int | None
    using: str

    def entries(self) -> QuerySet[Any]:
        """Return every entry the write logged (the row's and the links'), oldest first."""
        entries = get_log_entry_model()._default_manager.using(self.using)
        return entries.filter(context_id=self.context_id).order_by("id")


def revert(
    target: BaseLogEntry | datetime.datetime,
    *,
    obj: Model | None = None,
    model: type[Model] | None = None,
    pk: Any = None,
    performed_by: Any = None,
    context: Mapping[str, Any] | None = None,
    using: str | None = None,
) -> Reverted:
    """Bring one object back to its state before a log entry, or as of a moment.

    Only the columns that differ are written, by one UPDATE (logged as one
    entry in a ``"revert"`` context naming ``reverted_entry`` or ``as_of``);
    columns the log cannot tell (masked, excluded, new) are left as they are
    and reported. An object deleted since is inserted again with its key.

    Args:
        target: A log entry of the object (its state before the entry is
            restored: reverting an UPDATE undoes it and every later change),
            or a moment.
        obj: The object. Needed with a moment unless ``model`` and ``pk`` are
            given; with an entry it lets key changes after the entry be followed.
        model: The model, for an object given by key (deleted ones too); with
            an entry, when its content type names no installed model (a
            historical model in a migration).
        pk: Its primary key.
        performed_by: The user recorded on the entries.
        context: More keys for the entries' ``context``.
        using: The database alias (default: the object's, the entry's, or the router's).

    Returns:
        What was written; ``entry_id`` is the row's new entry.

    Raises:
        RevertConflict: If the state cannot be written back (nothing is written).
        HistoryError: If the entry is not the object's, or the model is not supported.
        TypeError: If a moment comes without the object.
    """
    state, key, details = _revert_state(target, obj=obj, model=model, pk=pk, using=using)
    return _write(state, key, REVERT, details, performed_by=performed_by, context=context, insert_only=False)


def plan_revert(
    target: BaseLogEntry | datetime.datetime,
    *,
    obj: Model | None = None,
    model: type[Model] | None = None,
    pk: Any = None,
    using: str | None = None,
) -> Difference:
    """Tell what :func:`revert` with the same arguments would write, without writing anything.

    For a confirmation page: the columns and links the revert would change,
    with the row's current values, and what it would keep or skip. Reads
    only (no lock is taken).

    Raises:
        RevertConflict: As :func:`revert` would for a state that cannot be
            rebuilt (``"absent"``), or a logged value the column no longer takes.
        HistoryError: As :func:`revert`.
        TypeError: As :func:`revert`.
    """
    state, key, _ = _revert_state(target, obj=obj, model=model, pk=pk, using=using)
    return compare(state, key=key)


def _revert_state(
    target: BaseLogEntry | datetime.datetime,
    *,
    obj: Model | None,
    model: type[Model] | None,
    pk: Any,
    using: str | None,
) -> tuple[history.AuditState, str, dict[str, Any]]:
    """Return the state :func:`revert` writes back, the object's key, and the context's details."""
    if isinstance(target, datetime.datetime):
        if obj is not None:
            model, pk = type(obj), obj.pk
        if model is None or pk is None:
            raise TypeError("revert(when) needs the object: obj=..., or model=... and pk=...")
        # The state to write back comes from the primary, never from a (lagging) read database.
        using = using or primary_database(model, obj)
        when = history._aware(target)
        found = history._rebuild(model, pk, using=using, bound="at", value=when, at=when)
        details: dict[str, Any] = {"as_of": when.isoformat()}
        moment = f"at {when.isoformat()}"
        key = history.key_text(pk)
    else:
        entry = target
        entry_model = history._entry_model(entry, model)
        deleting = entry.action == "DELETE" and entry.table_name == entry_model._meta.db_table
        if obj is None:
            model = entry_model
            key, follow, high = history._key_before(entry, model)
            found = history._rebuild(
                model,
                key,
                using=using or primary_database(model, entry),
                bound="before",
                value=entry.pk,
                at=entry.at,
                follow=follow,
                high=high,
                transaction_id=entry.transaction_id if deleting else None,
            )
            key = str(entry.object_id)
        else:
            model, key = type(obj), history.key_text(obj.pk)
            if entry_model._meta.concrete_model is not model._meta.concrete_model:
                raise history.HistoryError(f"Entry {entry.pk} is not an entry of {model._meta.label} {obj.pk}.")
            found = history._rebuild(
                model,
                key,
                using=using or primary_database(model, obj),
                bound="before",
                value=entry.pk,
                at=entry.at,
                transaction_id=entry.transaction_id if deleting else None,
            )
            if found and not any(
                part_key == str(entry.object_id) and low <= entry.pk < high for part_key, low, high in found[1].parts
            ):
                raise history.HistoryError(f"Entry {entry.pk} is not an entry of {model._meta.label} {obj.pk}.")
        details = {"reverted_entry": entry.pk}
        moment = f"before entry {entry.pk}"
    if found is None:
        name = f"{model._meta.label} {pk if pk is not None else key}"
        raise RevertConflict("absent", f"{name} did not exist {moment}: nothing to go back to.")
    return found[0], key, details


def restore(
    entry: BaseLogEntry,
    *,
    model: type[Model] | None = None,
    performed_by: Any = None,
    context: Mapping[str, Any] | None = None,
) -> Reverted:
    """Insert a deleted object again from its DELETE entry, with its old primary key.

    The row is logged as an INSERT in a ``"restore"`` context naming
    ``restored_entry``, and its many-to-many links as they were before the
    transaction that deleted it are added back.

    Args:
        entry: The DELETE entry of the object's own row.
        model: The model, when the entry's content type names no installed
            one (a historical model in a migration).
        performed_by: The user recorded on the entries.
        context: More keys for the entries' ``context``.

    Returns:
        What was written.

    Raises:
        RevertConflict: If the key is taken again, or the row cannot be
            written back (nothing is written).
        HistoryError: If ``entry`` is not such a DELETE.
    """
    model = history._entry_model(entry, model)
    if entry.action != "DELETE" or entry.table_name != model._meta.db_table:
        raise history.HistoryError(
            f"restore() takes the DELETE entry of an object's row; entry {entry.pk} is a {entry.action} of "
            f"{entry.table_name}."
        )
    # From the primary, whatever database the entry came from: never write back a lagging replica's state.
    state = history.state_before(entry, model=model, using=primary_database(model, entry))
    if state is None:  # pragma: no cover - a DELETE always logs the row it removed
        raise RevertConflict("absent", f"Entry {entry.pk} records no row to restore.")
    details = {"restored_entry": entry.pk}
    key = str(entry.object_id)
    return _write(state, key, RESTORE, details, performed_by=performed_by, context=context, insert_only=True)


# --- writing --------------------------------------------------------------------------------------


def _write(
    state: history.AuditState,
    key: str,
    context_type: str,
    details: dict[str, Any],
    *,
    performed_by: Any,
    context: Mapping[str, Any] | None,
    insert_only: bool,
) -> Reverted:
    model = state.model._meta.concrete_model or state.model
    using = state.using
    connection = connections[using]
    owns_transaction = not connection.in_atomic_block
    label = f"{model._meta.label} {key}"
    payload = {**details, "model": model._meta.label, "object_id": key, **(context or {})}
    try:
        with (
            audit_context(context_type, performed_by=performed_by, context=payload, using=using) as active,
            transaction.atomic(using=using),
            connection.cursor() as cursor,
        ):
            written = _write_row(cursor, model, state, key, label, insert_only=insert_only)
            new_key = written["pk"]
            live = model._base_manager.using(using).get(pk=new_key)
            added, removed = _write_links(cursor, model, state, live, key)
            if owns_transaction:
                cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # deferred checks fail here, not at commit
            entries = list(
                get_log_entry_model()
                ._default_manager.using(using)
                .filter(context_id=active.pk, table_name=model._meta.db_table)
                .order_by("id")
                .values_list("id", flat=True)
            )
    except IntegrityError as error:
        raise _conflict(error, label) from error
    except DataError as error:
        message = f"{label}: a logged value no longer fits its column: {first_line(error)}"
        raise RevertConflict("type", message) from error
    return Reverted(
        model=state.model,
        pk=live.pk,
        action=written["action"],
        instance=live,
        state=state,
        changed_columns=written["changed"],
        kept_columns=written["kept"],
        skipped_columns=written["skipped"],
        defaulted_columns=written["defaulted"],
        m2m_added=added,
        m2m_removed=removed,
        context_id=active.pk,
        entry_id=entries[-1] if entries and written["action"] else None,
        using=using,
    )


def _write_row(
    cursor: CursorWrapper, model: type[Model], state: history.AuditState, key: str, label: str, *, insert_only: bool
) -> dict[str, Any]:
    table, pk = model._meta.db_table, history.pk_column(model)
    pk_field = model._meta.pk
    assert pk_field is not None
    connection = cursor.db
    columns, logged, skipped, found = row_difference(cursor, model, state, key, lock=True)
    key_value = pk_field.get_db_prep_value(pk_field.to_python(key), connection)
    if found is not None:
        if insert_only:
            raise RevertConflict("exists", f"{label} exists: its key has been taken again since it was deleted.")
        changed = tuple(found)
        _check_foreign_keys(cursor, model, state, changed, label)
        if changed:
            cursor.execute(history_sql.update_row(table, pk, changed), [state.values_json, key_value])
        kept = {c: reason for c, reason in state.unknown_columns.items() if c in columns}
        new_pk = state.pk if pk in changed else pk_field.to_python(key)
        return {
            "pk": new_pk,
            "action": "UPDATE" if changed else None,
            "changed": changed,
            "kept": kept,
            "skipped": skipped,
            "defaulted": (),
        }
    reader = history._Reader(model, state.using, "through", history_sql.MAX_ID)
    if reader.life(key) is not None:
        raise RevertConflict(
            "missing",
            f"{label} is not in its table, yet the log records no deletion: its key may have been changed "
            "(a key change is logged under the new key).",
        )
    fields = {sql.bare_name(triggers.column_of(f)): f for f in model._meta.concrete_fields if f.column}
    defaulted, params, required = [], [], []
    for column, info in columns.items():
        if column in logged or info.generated or info.has_default:
            continue
        model_field = fields.get(column)
        reason = state.unknown_columns.get(column)
        if model_field is not None and (
            model_field.has_default() or (reason in (history.MASKED, history.EXCLUDED) and info.not_null)
        ):
            value = model_field.get_default()
            if value is not None or not info.not_null:
                defaulted.append(column)
                params.append(model_field.get_db_prep_save(value, connection))
                continue
        if info.not_null:
            required.append(column)
    if required:
        raise RevertConflict(
            "not-null",
            f"{label} cannot be inserted again: the log has no value for {', '.join(required)} (NOT NULL, "
            "no default), probably added since. Give the column a default, or set it by hand.",
            tuple(required),
        )
    _check_foreign_keys(cursor, model, state, tuple(logged), label)
    cursor.execute(history_sql.insert_row(table, logged, defaulted), [*params, state.values_json])
    untouched = tuple(c for c, info in columns.items() if c not in logged and c not in defaulted and not info.generated)
    return {
        "pk": state.pk,
        "action": "INSERT",
        "changed": tuple(logged),
        "kept": {},
        "skipped": skipped,
        "defaulted": tuple(defaulted) + untouched,
    }


def _check_foreign_keys(
    cursor: CursorWrapper, model: type[Model], state: history.AuditState, columns: tuple[str, ...], label: str
) -> None:
    """Refuse to write a foreign key to a row that is gone; keep the rows found until the transaction ends."""
    for model_field in model._meta.concrete_fields:
        if not isinstance(model_field, ForeignKey) or not getattr(model_field, "db_constraint", True):
            continue
        column = sql.bare_name(triggers.column_of(model_field))
        value = getattr(state.instance, model_field.attname)
        if column not in columns or value is None:
            continue
        target = model_field.target_field
        target_table = target.model._meta.db_table
        cursor.execute(
            history_sql.existing_keys(target_table, sql.bare_name(triggers.column_of(target))),
            [[target.get_db_prep_value(value, cursor.db)]],
        )
        if cursor.fetchone() is None:
            raise RevertConflict(
                "foreign-key",
                f"{label}: {model_field.name} refers to {target.model._meta.label} {value}, which no longer exists.",
                (column,),
            )


def _write_links(
    cursor: CursorWrapper, model: type[Model], state: history.AuditState, live: Model, key: str
) -> tuple[dict[str, frozenset[Any]], dict[str, frozenset[Any]]]:
    """Bring the many-to-many sets back: undo the link changes logged since the state's moment."""
    added: dict[str, frozenset[Any]] = {}
    removed: dict[str, frozenset[Any]] = {}
    for link, to_add, to_remove in link_differences(model, state, key):
        name = link.field.name
        target = link.target_model
        target_pk = target._meta.pk
        assert target_pk is not None
        if to_add:
            cursor.execute(
                history_sql.existing_keys(target._meta.db_table, sql.bare_name(triggers.column_of(target_pk))),
                [[target_pk.get_db_prep_value(value, cursor.db) for value in to_add]],
            )
            gone = to_add - {target_pk.to_python(value) for (value,) in cursor.fetchall()}
            if gone:
                listed = ", ".join(str(value) for value in sorted(gone, key=str))
                raise RevertConflict(
                    "foreign-key",
                    f"{model._meta.label} {key}: {name} linked {target._meta.label} {listed}, which no longer exist.",
                    (name,),
                )
        manager = getattr(live, name)
        if to_remove:
            manager.remove(*to_remove)
            removed[name] = frozenset(to_remove)
        if to_add:
            manager.add(*to_add)
            added[name] = frozenset(to_add)
    return added, removed


def _conflict(error: IntegrityError, label: str) -> RevertConflict:
    cause = error.__cause__
    state = getattr(cause, "pgcode", None) or getattr(cause, "sqlstate", None)
    diag = getattr(cause, "diag", None)
    column = getattr(diag, "column_name", None)
    detail = getattr(diag, "message_detail", None)
    kind = _SQLSTATES.get(str(state), "integrity")
    message = f"{label} cannot be written back: {first_line(error)}" + (f" ({detail})" if detail else "")
    return RevertConflict(kind, message, (column,) if column else ())
