"""Time travel: an object's state at any moment, rebuilt from the log, and revert and restore.

Reading (this module): :func:`state_at` (also ``obj.audit_logs.state_at(when)``
and ``Model.audit_state(pk, at=when)``), :func:`state_before` and
:func:`state_after` (also ``entry.state_before()`` / ``entry.state_after()``)
return an :class:`AuditState`: the raw logged values by column, what cannot be
rebuilt and why, the many-to-many sets, and an unsaved model instance built
from the values as ``Model.from_db`` builds one. Writing (``revert`` and
``restore``, and ``plan_revert``, which tells what a revert would write) lives in
``audit_log.history_write`` and is re-exported here.

How a state is rebuilt (one query, ``history_sql.fold``): the entries of the
object's own table are folded inside PostgreSQL. The newest INSERT at or
before the moment gives a full row, and every later UPDATE's new values go
over it (``jsonb_object_agg`` ordered by id keeps the last); a DELETE means
gone. An UPDATE that changed the primary key is logged under the new key, so
the fold follows it back to the old key. An object older than its log (no
INSERT) is rebuilt from what the log does know: the new values of changes
before the moment, the old values of the first changes after it, and the
row its DELETE recorded. Many-to-many sets come from the link entries logged
under the object (one more query). The values are then read as the table's
columns by ``jsonb_populate_record()`` (one query) and converted by the
fields' converters, exactly as for a row Django reads.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.db import DatabaseError, connections, router, transaction
from django.db.models import ManyToManyField, Model
from django.utils import timezone

from . import history_sql, sql, triggers
from .loading import get_log_entry_model
from .models import exact_json_decoder

if TYPE_CHECKING:
    from .history_write import RESTORE, REVERT, Difference, Reverted, plan_revert, restore, revert
    from .models import BaseLogEntry

__all__ = [
    "EXCLUDED",
    "MASKED",
    "NOT_CONVERTIBLE",
    "NOT_LOGGED",
    "RESTORE",
    "REVERT",
    "AuditState",
    "Difference",
    "HistoryError",
    "RevertConflict",
    "Reverted",
    "plan_revert",
    "restore",
    "revert",
    "state_after",
    "state_at",
    "state_before",
    "state_of",
]
_WRITERS = frozenset({"RESTORE", "REVERT", "Difference", "Reverted", "plan_revert", "restore", "revert"})


def __getattr__(name: str) -> Any:
    # Writing lives in history_write, which needs this module first: loaded on first use.
    if name in _WRITERS:
        from . import history_write

        return getattr(history_write, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


#: Why a column's value is not known (values of :attr:`AuditState.unknown_columns`).
MASKED = "masked"  #: logged as ``"**masked**"``
EXCLUDED = "excluded"  #: left out of the log (``AuditLogsField(exclude=...)``)
NOT_LOGGED = "not logged"  #: no entry says (a column added since, or an object older than its log)
NOT_CONVERTIBLE = "not convertible"  #: logged, but the column's type (or the field) no longer takes it

#: The attribute of a rebuilt instance that holds its :class:`AuditState`.
STATE_ATTRIBUTE = "_audit_state"

_decode = exact_json_decoder().decode
_MAX_KEY_CHANGES = 100


class HistoryError(Exception):
    """A state cannot be rebuilt or written back (the model is gone, the entry is not the object's ...)."""


class RevertConflict(HistoryError):  # noqa: N818  # a conflict, not a bug: the issue's name for it
    """A revert or restore was refused; nothing was written.

    Attributes:
        kind: ``"absent"`` (the object did not exist then), ``"exists"``
            (restore: the key is taken), ``"missing"`` (the row is gone
            though the log has no deletion), ``"not-null"`` (columns with no
            value and no default), ``"foreign-key"`` (a referenced row is
            gone), ``"unique"`` (a unique constraint), ``"type"`` (a logged
            value the column no longer takes), ``"integrity"`` (another
            constraint).
        columns: The columns (or many-to-many fields) concerned, if known.
    """

    def __init__(self, kind: str, message: str, columns: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.kind = kind
        self.columns = columns


@dataclass(frozen=True)
class AuditState:
    r"""An object as it was at one moment, rebuilt from the log.

    Attributes:
        model: The model.
        pk: The primary key the object had then (it may have changed since).
        instance: An unsaved instance holding the values, converted by the
            fields like a row Django reads; columns in ``unknown_columns``
            are None. Its ``_audit_state`` is this state. Do not ``save()``
            it (it would write those Nones): use ``revert()``.
        values: The logged value of every column known, as the log holds it
            (``to_jsonb`` form: dates as ISO text, ``bytea`` as ``"\\\\x..."``,
            numbers with a fraction as ``Decimal``), including columns the
            model no longer has.
        unknown_columns: The model's columns whose value cannot be rebuilt,
            and why: :data:`MASKED`, :data:`EXCLUDED`, :data:`NOT_LOGGED` or
            :data:`NOT_CONVERTIBLE`.
        missing_columns: Logged columns the model no longer has (their values
            are in ``values``).
        m2m: The target primary keys of each audited many-to-many field (auto-
            created tables not in ``m2m_exclude``), by field name.
        at: The moment asked for; for a state before or after an entry, the
            entry's time.
        entry_id: The newest of the object's entries the state includes
            (None if none: an object older than its log).
        complete: True if the object's log starts with its INSERT, so every
            logged column is known from the log alone.
        using: The database alias.
        values_json: ``values`` as the JSON text the log holds.
    """

    model: type[Model]
    pk: Any
    instance: Model
    values: dict[str, Any]
    unknown_columns: dict[str, str]
    missing_columns: frozenset[str]
    m2m: dict[str, frozenset[Any]]
    at: datetime.datetime | None
    entry_id: int | None
    complete: bool
    using: str
    values_json: str = field(repr=False)

    def entry(self) -> BaseLogEntry | None:
        """Return the newest log entry the state includes (a query), or None."""
        if self.entry_id is None:
            return None
        return get_log_entry_model()._default_manager.using(self.using).get(pk=self.entry_id)


def state_of(instance: Model) -> AuditState | None:
    """Return the :class:`AuditState` of an instance rebuilt from the log (None for any other)."""
    state = getattr(instance, STATE_ATTRIBUTE, None)
    return state if isinstance(state, AuditState) else None


# --- what is read ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Link:
    """An audited many-to-many field: its auto-created table and the column naming the target."""

    field: ManyToManyField[Any, Any]
    table: str
    target_column: str

    @property
    def target_model(self) -> type[Model]:
        """The related model."""
        model = self.field.remote_field.model
        assert isinstance(model, type)  # resolved on a rendered model
        return model


def links(model: type[Model]) -> list[Link]:
    """Return the many-to-many fields of ``model`` whose links are logged under it.

    Those whose table Django creates (no ``through=``), less those named in
    the ``AuditLogsField``'s ``m2m_exclude``.
    """
    audit = triggers.audit_field(model)
    excluded = set(getattr(audit, "m2m_exclude", ()))
    found = []
    for many in model._meta.local_many_to_many:
        through = many.remote_field.through
        if isinstance(through, type) and through._meta.auto_created and many.name not in excluded:
            target = sql.bare_name(str(many.m2m_reverse_name()))
            found.append(Link(many, through._meta.db_table, target))
    return found


def log_names(entry_model: type[Model] | None = None) -> history_sql.LogNames:
    """Return the log table's names as the history's SQL uses them."""
    entry = entry_model or get_log_entry_model()

    def column(name: str) -> str:
        return sql.bare_name(triggers.column_of(entry._meta.get_field(name)))

    return history_sql.LogNames(
        table=entry._meta.db_table,
        id=column("id"),
        content_type=column("content_type"),
        object_id=column("object_id"),
        table_name=column("table_name"),
        action=column("action"),
        at=column("at"),
        changes=column("changes"),
        transaction_id=column("transaction_id"),
    )


def pk_column(model: type[Model]) -> str:
    """Return the primary-key column of ``model`` as the log names it."""
    pk = model._meta.pk
    assert pk is not None  # composite keys are refused by audit_log.E008
    return sql.bare_name(triggers.column_of(pk))


def key_text(value: Any) -> str:
    """Return a primary key (or its logged value) as ``object_id`` holds it: PostgreSQL's text form."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _concrete(model: type[Model]) -> type[Model]:
    concrete = model._meta.concrete_model or model
    if concrete._meta.parents:
        raise HistoryError(
            f"{concrete._meta.label} inherits a table from another model (multi-table inheritance): "
            "its state spans several tables, which the history does not rebuild."
        )
    if triggers.audit_field(concrete) is None:
        raise HistoryError(f"{concrete._meta.label} is not audited: it has no AuditLogsField.")
    return concrete


def _aware(when: datetime.datetime) -> datetime.datetime:
    if settings.USE_TZ and timezone.is_naive(when):
        return timezone.make_aware(when)
    return when


@dataclass
class _Life:
    """An object's life up to a moment: the JSON pieces of its values and its keys' ranges of ids."""

    pieces: list[str]
    parts: list[tuple[str, int, int]]
    last_id: int | None
    rooted: bool


class _Reader:
    """Runs the fold queries of one model's object on one database."""

    def __init__(self, model: type[Model], using: str, bound: str, value: Any) -> None:
        self.model = model
        self.using = using
        self.connection = connections[using]
        self.log = log_names()
        self.bound = bound
        self.value = value
        self.pk = pk_column(model)
        self.table = model._meta.db_table
        self.content_type = _content_type_id(using, model)

    def life(self, key: str, *, high: int = history_sql.MAX_ID, follow: bool = True, depth: int = 0) -> _Life | None:
        """Fold the entries under ``key`` below id ``high``; None if no object held the key then.

        With ``follow``, an object that came to ``key`` by a key change after
        the moment is looked up under its old key (the object is the one that
        holds ``key`` last below ``high``).
        """
        if self.content_type is None:
            return None
        params = {
            "ct": self.content_type,
            "key": key,
            "table": self.table,
            "pk": self.pk,
            "low": 0,
            "high": high,
            "bound": self.value,
        }
        with self.connection.cursor() as cursor:
            cursor.execute(history_sql.fold(self.log, "%(ct)s", bound=self.bound), params)
            row = cursor.fetchone()
        lo_id, lo_action, lo_values, lo_old_key, last_id, forward = row[:6]
        start_id, start_old_key, hi_action, hi_row, backward = row[6:]
        deeper = depth < _MAX_KEY_CHANGES
        if follow and deeper and start_old_key is not None:
            # The object holding the key came to it after the moment: it had its old key then.
            before = self.life(key_text(_decode(start_old_key)), high=start_id, depth=depth + 1)
            if before is not None:
                before.parts.append((key, start_id, high))
            return before
        if lo_action == "DELETE":
            return None
        if lo_action == "INSERT":
            return _Life([lo_values, forward or "{}"], [(key, lo_id, high)], last_id, rooted=True)
        if lo_action == "UPDATE":  # the key changed to this one: the earlier life is under the old key
            before = self.life(key_text(_decode(lo_old_key)), high=lo_id, depth=depth + 1) if deeper else None
            pieces = [*(before.pieces if before else []), lo_values, forward or "{}"]
            parts = [*(before.parts if before else []), (key, lo_id, high)]
            return _Life(pieces, parts, last_id, rooted=bool(before and before.rooted))
        if last_id is None and backward is None and hi_action != "DELETE":
            return None  # nothing under this key at the moment
        # An object older than its log: what it was like comes from its later entries too.
        return _Life([hi_row or "{}", backward or "{}", forward or "{}"], [(key, 0, high)], last_id, rooted=False)

    def link_sets(self, life: _Life, found: list[Link], transaction_id: int | None) -> dict[str, frozenset[Any]]:
        """Rebuild the many-to-many sets of ``found`` over the parts of ``life``."""
        sets: dict[str, set[Any]] = {link.field.name: set() for link in found}
        if not found or self.content_type is None:
            return {name: frozenset(values) for name, values in sets.items()}
        object_id_type = get_log_entry_model()._meta.get_field("object_id").db_type(self.connection) or "text"
        params = {
            "ct": self.content_type,
            "tables": [link.table for link in found],
            "columns": [link.target_column for link in found],
            "keys": [key for key, _, _ in life.parts],
            "lows": [low for _, low, _ in life.parts],
            "highs": [high for _, _, high in life.parts],
            "bound": self.value,
            "transaction": transaction_id,
        }
        query = history_sql.fold_links(self.log, "%(ct)s", bound=self.bound, object_id_type=object_id_type)
        with self.connection.cursor() as cursor:
            cursor.execute(query, params)
            rows = cursor.fetchall()
        for ordinal, target in rows:
            link = found[ordinal - 1]
            target_pk = link.target_model._meta.pk
            assert target_pk is not None
            sets[link.field.name].add(target_pk.to_python(_decode(target)))
        return {name: frozenset(values) for name, values in sets.items()}


def _content_type_id(using: str, model: type[Model]) -> int | None:
    manager = ContentType.objects.db_manager(using)
    try:
        return int(manager.get_by_natural_key(model._meta.app_label, str(model._meta.model_name)).pk)
    except ContentType.DoesNotExist:
        return None  # never logged: the triggers create it with the first entry


def merge(pieces: list[str]) -> str:
    """Merge JSON objects (``jsonb`` text, later ones winning) into one, without decoding them.

    ``jsonb`` keeps the last of duplicate keys, and so does Python's decoder:
    joining the members is enough, and numbers keep their exact text.
    """
    members = [piece[1:-1] for piece in pieces if piece.strip() not in ("", "{}")]
    return "{" + ", ".join(members) + "}"


# --- rebuilding -----------------------------------------------------------------------------------


def _rebuild(
    model: type[Model],
    key: Any,
    *,
    using: str | None,
    bound: str,
    value: Any,
    at: datetime.datetime | None,
    follow: bool = True,
    high: int = history_sql.MAX_ID,
    transaction_id: int | None = None,
) -> tuple[AuditState, _Life] | None:
    concrete = _concrete(model)
    using = using or router.db_for_read(concrete)
    reader = _Reader(concrete, using, bound, value)
    life = reader.life(key_text(key), follow=follow, high=high)
    if life is None:
        return None
    values_json = merge(life.pieces)
    values: dict[str, Any] = _decode(values_json)
    audit = triggers.audit_field(concrete)
    excluded, _ = triggers.resolve_columns(concrete, audit.exclude if audit else ())
    fields = [f for f in concrete._meta.concrete_fields if f.column]
    columns = {sql.bare_name(triggers.column_of(f)): f for f in fields}
    unknown: dict[str, str] = {}
    for column in columns:
        if column not in values:
            unknown[column] = EXCLUDED if column in excluded else NOT_LOGGED
        elif values[column] == sql.MASKED_VALUE:
            unknown[column] = MASKED
    converted = _convert(using, concrete, values_json, [f for c, f in columns.items() if c not in unknown], unknown)
    instance = model.from_db(using, [f.attname for f in fields], [converted.get(f.attname) for f in fields])
    instance._state.adding = True  # a snapshot, not a row of the table
    state = AuditState(
        model=model,
        pk=instance.pk,
        instance=instance,
        values=values,
        unknown_columns=unknown,
        missing_columns=frozenset(values) - set(columns),
        m2m=reader.link_sets(life, links(concrete), transaction_id),
        at=at,
        entry_id=life.last_id,
        complete=life.rooted,
        using=using,
        values_json=values_json,
    )
    setattr(instance, STATE_ATTRIBUTE, state)
    return state, life


@contextmanager
def _savepoint(using: str) -> Iterator[None]:
    """Keep a failing statement from aborting the caller's transaction (nothing to keep in autocommit)."""
    with transaction.atomic(using=using) if connections[using].in_atomic_block else nullcontext():
        yield


def _convert(
    using: str, model: type[Model], values_json: str, fields: list[Any], unknown: dict[str, str]
) -> dict[str, Any]:
    """Read logged values as the table's columns and convert them like Django reads a row.

    A value the column or the field no longer takes (the type changed, a date
    Python cannot hold) is left out and reported in ``unknown``.
    """
    connection = connections[using]
    table = model._meta.db_table

    def read(batch: list[Any]) -> dict[str, Any]:
        columns = [sql.bare_name(triggers.column_of(f)) for f in batch]
        with _savepoint(using), connection.cursor() as cursor:
            cursor.execute(history_sql.read_as_row(table, columns), [values_json])
            row = cursor.fetchone()
        converted = {}
        for f, raw in zip(batch, row, strict=True):
            column = f.get_col(table)
            value = raw
            for converter in connection.ops.get_db_converters(column) + column.get_db_converters(connection):
                value = converter(value, column, connection)
            converted[f.attname] = value
        return converted

    if not fields:
        return {}
    try:
        return read(fields)
    except (DatabaseError, ValueError, TypeError, ArithmeticError):
        pass  # find the culprits one by one: only an odd state pays for it
    converted = {}
    for f in fields:
        try:
            converted.update(read([f]))
        except (DatabaseError, ValueError, TypeError, ArithmeticError):
            unknown[sql.bare_name(triggers.column_of(f))] = NOT_CONVERTIBLE
    return converted


def state_at(model: type[Model], pk: Any, when: datetime.datetime, *, using: str | None = None) -> AuditState | None:
    """Return the object of ``model`` with key ``pk`` as it was at ``when``, rebuilt from the log.

    Every entry logged at or before ``when`` counts (``at`` is the time the
    statement started). Works for deleted objects too. An object that got
    ``pk`` by a key change after ``when`` is found under the key it had then.

    Args:
        model: An audited model.
        pk: The object's primary key (now, or when it was deleted).
        when: The moment; a naive datetime is taken in the current time zone.
        using: The database alias (default: the router's for reading ``model``).

    Returns:
        The state, or None if no such object existed at ``when`` (not yet
        created, deleted, or never logged).

    Raises:
        HistoryError: If the model is not audited or uses multi-table inheritance.
    """
    when = _aware(when)
    found = _rebuild(model, pk, using=using, bound="at", value=when, at=when)
    return found[0] if found else None


def _entry_model(entry: BaseLogEntry, model: type[Model] | None = None) -> type[Model]:
    if model is not None:
        tables = {model._meta.db_table, *(link.table for link in links(model))}
        if entry.table_name not in tables:
            raise HistoryError(f"Entry {entry.pk} is not an entry of {model._meta.label} ({entry.table_name}).")
        return model
    content_type = entry.content_type
    model = content_type.model_class() if content_type is not None else None
    if model is None:
        raise HistoryError(f"Entry {entry.pk} belongs to no installed model ({entry.table_name}).")
    return model


def _key_before(entry: BaseLogEntry, model: type[Model]) -> tuple[str, bool, int]:
    """Return the key the object had just before ``entry``, whether to follow key changes, and the id bound."""
    changes = entry.changes if isinstance(entry.changes, dict) else {}
    pk = pk_column(model)
    own = entry.table_name == model._meta.db_table
    if own and entry.action == "UPDATE" and isinstance(changes.get(pk), list):
        return key_text(changes[pk][0]), True, entry.pk  # the entry changed the key
    return str(entry.object_id), False, history_sql.MAX_ID


def state_before(
    entry: BaseLogEntry, *, model: type[Model] | None = None, using: str | None = None
) -> AuditState | None:
    """Return the object ``entry`` changed, as it was just before the entry.

    For a DELETE of the object, its many-to-many sets are those before the
    transaction that deleted it (Django removes the links first).

    Args:
        entry: A log entry of an audited model (its own table or a link table).
        model: The model, when the entry's content type names no installed
            one (a historical model in a migration); default: the content type's.
        using: The database to read the log from; default: the one ``entry``
            was read from (``restore()`` passes the primary).

    Returns:
        The state, or None before the object's INSERT.

    Raises:
        HistoryError: If the entry's model is gone or not supported.
    """
    model = _entry_model(entry, model)
    key, follow, high = _key_before(entry, model)
    deleting = entry.action == "DELETE" and entry.table_name == model._meta.db_table
    found = _rebuild(
        model,
        key,
        using=using or entry._state.db,
        bound="before",
        value=entry.pk,
        at=entry.at,
        follow=follow,
        high=high,
        transaction_id=entry.transaction_id if deleting else None,
    )
    return found[0] if found else None


def state_after(entry: BaseLogEntry, *, model: type[Model] | None = None) -> AuditState | None:
    """Return the object ``entry`` changed, as the entry left it (None after its DELETE).

    Args:
        entry: A log entry of an audited model (its own table or a link table).
        model: As for :func:`state_before`.
    """
    model = _entry_model(entry, model)
    found = _rebuild(
        model, str(entry.object_id), using=entry._state.db, bound="through", value=entry.pk, at=entry.at, follow=False
    )
    return found[0] if found else None
