"""Convert an existing unpartitioned log table into a partitioned one, without a long lock.

``manage.py audit_log_partitions --convert`` calls :func:`convert`:

1. A partitioned twin of the log is created beside it (``<table>_partitioned``):
   the same columns, defaults and identity, the key ``(id, at)``, the same
   indexes under temporary names, the same grants, and a default partition.
2. Entries are copied in id ranges, each range in its own short transaction,
   creating the partitions the range needs as it goes. A range is copied
   only up to a *horizon*: the highest id at a moment when no transaction
   was writing to the log (a brief ``SHARE`` lock waits for the writers of
   the moment). Ids come from one sequence, so every id at or below the
   horizon belongs to a committed (or rolled back) entry and no late commit
   can slip behind the copy. Rerunning the command resumes after the highest
   id already copied.
3. One short final transaction locks the old table (writers wait), copies
   the entries written since the last horizon, renames the old table to
   ``<table>_unpartitioned`` (with its indexes and sequence), gives the twin
   the log's name, index names (those Django's migration state knows) and
   sequence (continuing after the highest id), and installs the log's guard,
   maintenance record and retention function on it. Writers that waited
   resolve the name again and write into the new table.

The old table is kept, with its guard, for the user to check and drop.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import OperationalError, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Model

from . import guard, partitions, sql

#: Entries copied per transaction.
DEFAULT_BATCH = 50_000

#: How long a lock on the old table is waited for before trying again (writers queue behind it meanwhile).
LOCK_TIMEOUT = "2s"
LOCK_ATTEMPTS = 30

#: Suffixes of the twin being filled and of the old table once swapped.
STAGING_SUFFIX = "partitioned"
OLD_SUFFIX = "unpartitioned"
_TEMPORARY = "new"


@dataclass(frozen=True)
class Conversion:
    """What :func:`convert` did.

    Attributes:
        table: The log table, now partitioned.
        old_table: The old table's new name (unqualified); drop it once checked.
        copied: Entries copied.
        partitions: Partitions created.
    """

    table: str
    old_table: str
    copied: int
    partitions: list[str]


def staging_name(table: str) -> str:
    """Return the name of the partitioned twin of ``table`` while it is filled."""
    return partitions.derived_name(table, STAGING_SUFFIX)


def old_name(table: str) -> str:
    """Return the name the old, unpartitioned ``table`` keeps after the swap."""
    return partitions.derived_name(table, OLD_SUFFIX)


def convert(
    connection: BaseDatabaseWrapper,
    log_model: type[Model],
    interval: str,
    *,
    batch: int = DEFAULT_BATCH,
    ahead: int = partitions.DEFAULT_AHEAD,
    progress: Callable[[str], None] | None = None,
    between_batches: Callable[[], None] | None = None,
    on_final_lock: Callable[[], None] | None = None,
) -> Conversion:
    """Convert the unpartitioned log table of ``log_model`` into a partitioned one (see the module docstring).

    Args:
        connection: The database connection (outside any transaction: each step commits).
        log_model: The log-entry model.
        interval: ``"month"``, ``"week"`` or ``"day"``.
        batch: Entries copied per transaction.
        ahead: Partitions created beyond the current one.
        progress: Called with a line of text after each step.
        between_batches: Called after each committed batch (tests write entries there).
        on_final_lock: Called in the final transaction once the old table is locked (tests
            start a writer there that must wait, then write into the new table).

    Returns:
        What was done.

    Raises:
        ValueError: If the table is already partitioned, or an old table from
            an earlier conversion is still there, or an index cannot be carried over.
    """
    partitions.check_interval(interval)
    if connection.in_atomic_block:
        raise ValueError("Convert outside a transaction: every batch commits on its own.")
    table = log_model._meta.db_table
    pk = sql.bare_name(getattr(log_model._meta.pk, "column", None) or "id")
    at = sql.bare_name(getattr(log_model._meta.get_field("at"), "column", None) or "at")
    say = progress or (lambda message: None)
    if partitions.is_partitioned(connection, table):
        raise ValueError(f"The log table {table} is already partitioned.")
    if _exists(connection, partitions.sibling(table, old_name(table))):
        raise ValueError(
            f"{old_name(table)} is left from an earlier conversion: check it and drop it before converting again."
        )
    staging = partitions.sibling(table, staging_name(table))
    copier = _Copier(connection, table, staging, pk, at, interval)
    with transaction.atomic(using=connection.alias):
        if not _exists(connection, staging):
            _create_twin(connection, table, staging, pk, at)
            say(f"Created {staging_name(table)}")
    last = copier.copied_up_to()
    while True:
        horizon = _with_lock(connection, table, "SHARE", lambda: _max_id(connection, table, pk))
        if horizon - last <= batch:
            break
        while last < horizon:
            upper = min(last + batch, horizon)
            with transaction.atomic(using=connection.alias):
                copier.copy(last, upper)
            say(f"Copied ids {last + 1}..{upper}")
            last = upper
            if between_batches:
                between_batches()

    def finish() -> None:
        if on_final_lock:
            on_final_lock()
        copier.copy(last, None)
        _swap(connection, log_model, table, staging, pk)

    started = time.monotonic()
    _with_lock(connection, table, "ACCESS EXCLUSIVE", finish)
    took = (time.monotonic() - started) * 1000
    say(f"Swapped: {table} is partitioned, the old table is {old_name(table)} (final transaction: {took:.0f} ms)")
    created = partitions.create_partitions(connection, table, interval, ahead=ahead)
    return Conversion(table, old_name(table), copier.copied, [*copier.created, *created])


def _exists(connection: BaseDatabaseWrapper, table: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [sql.quote_name(table)])
        [exists] = cursor.fetchone()
    return bool(exists)


def _max_id(connection: BaseDatabaseWrapper, table: str, pk: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT coalesce(max({sql.quote_ident(pk)}), 0) FROM {sql.quote_name(table)}")
        [value] = cursor.fetchone()
    return int(value)


def _with_lock(connection: BaseDatabaseWrapper, table: str, mode: str, then: Callable[[], Any]) -> Any:
    """Run ``then`` in a transaction holding ``mode`` on ``table``, waiting at most LOCK_TIMEOUT per attempt.

    A lock request that waits makes every later writer wait behind it, so it
    gives up quickly (and tries again) rather than stall the application
    behind a long transaction.
    """
    for attempt in range(LOCK_ATTEMPTS):
        try:
            with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
                cursor.execute(f"SET LOCAL lock_timeout = {sql.quote_literal(LOCK_TIMEOUT)}")
                cursor.execute(f"LOCK TABLE {sql.quote_name(table)} IN {mode} MODE")
                cursor.execute("SET LOCAL lock_timeout = 0")
                return then()
        except OperationalError as error:
            if "lock timeout" not in str(error) or attempt == LOCK_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def _indexes(connection: BaseDatabaseWrapper, table: str) -> list[tuple[str, str, bool, bool]]:
    """Return ``(name, definition, is_primary, is_unique)`` of every index of ``table``."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, pg_get_indexdef(x.indexrelid), x.indisprimary, x.indisunique "
            "FROM pg_index AS x JOIN pg_class AS c ON c.oid = x.indexrelid "
            "WHERE x.indrelid = to_regclass(%s) ORDER BY c.relname",
            [sql.quote_name(table)],
        )
        return list(cursor.fetchall())


def _create_twin(connection: BaseDatabaseWrapper, table: str, staging: str, pk: str, at: str) -> None:
    """Create the empty partitioned twin of ``table``: columns, key, indexes, grants, default partition."""
    source, target = sql.quote_name(table), sql.quote_name(staging)
    statements = [
        f"CREATE TABLE {target} (LIKE {source} INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING IDENTITY "
        f"INCLUDING STORAGE INCLUDING COMMENTS INCLUDING COMPRESSION) {partitions.partition_by_clause(at)}",
        f"ALTER TABLE {target} ADD PRIMARY KEY ({sql.quote_ident(pk)}, {sql.quote_ident(at)})",
    ]
    for name, definition, is_primary, is_unique in _indexes(connection, table):
        if is_primary:
            continue
        if is_unique:
            raise ValueError(
                f"The unique index {name} of {table} cannot be carried to a partitioned table (its unique "
                f"indexes must include {at}). Drop it or add {at}, then convert."
            )
        # pg_get_indexdef() gives "CREATE INDEX name ON table USING ...": keep the method onwards.
        method = definition[definition.index(" USING ") :]
        temporary = sql.quote_ident(partitions.derived_name(name, _TEMPORARY))
        statements.append(f"CREATE INDEX {temporary} ON {target}{method}")
    statements += _grants(connection, table, staging)
    statements.append(
        f"CREATE TABLE {sql.quote_name(partitions.sibling(table, partitions.default_partition_name(table)))} "
        f"PARTITION OF {target} DEFAULT"
    )
    with connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)


def _grants(connection: BaseDatabaseWrapper, table: str, staging: str) -> list[str]:
    """Return GRANT statements giving the twin the privileges others hold on ``table``."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(a.grantee)) END, "
            "a.privilege_type, a.is_grantable FROM pg_class AS c, aclexplode(c.relacl) AS a "
            "WHERE c.oid = to_regclass(%s) AND a.grantee <> c.relowner",
            [sql.quote_name(table)],
        )
        rows = cursor.fetchall()
    return [
        f"GRANT {privilege} ON {sql.quote_name(staging)} TO {grantee}{' WITH GRANT OPTION' if grantable else ''}"
        for grantee, privilege, grantable in rows
    ]


class _Copier:
    """Copies id ranges of the old table into the twin, creating the partitions each range needs."""

    def __init__(
        self, connection: BaseDatabaseWrapper, table: str, staging: str, pk: str, at: str, interval: str
    ) -> None:
        self.connection, self.table, self.staging = connection, table, staging
        self.pk, self.at, self.interval = sql.quote_ident(pk), sql.quote_ident(at), interval
        self.copied = 0
        self.created: list[str] = []

    def copied_up_to(self) -> int:
        """The highest id already in the twin (a rerun resumes after it)."""
        with self.connection.cursor() as cursor:
            cursor.execute(f"SELECT coalesce(max({self.pk}), 0) FROM {sql.quote_name(self.staging)}")
            [value] = cursor.fetchone()
        return int(value)

    def copy(self, after: int, upto: int | None) -> None:
        """Copy the entries with ``after < id <= upto`` (no upper bound: None)."""
        where = f"{self.pk} > %s" + ("" if upto is None else f" AND {self.pk} <= %s")
        params = [after] if upto is None else [after, upto]
        source = sql.quote_name(self.table)
        with self.connection.cursor() as cursor:
            cursor.execute(f"SELECT min({self.at}), max({self.at}) FROM {source} WHERE {where}", params)
            first, last = cursor.fetchone()
            if first is not None:
                self._cover(first, last)
            cursor.execute(
                f"INSERT INTO {sql.quote_name(self.staging)} OVERRIDING SYSTEM VALUE "
                f"SELECT * FROM {source} WHERE {where}",
                params,
            )
            self.copied += cursor.rowcount

    def _cover(self, first: datetime, last: datetime) -> None:
        """Create the twin's missing partitions for ``[first, last]``, named after the log table."""
        existing = partitions.list_partitions(self.connection, self.staging)
        start, end = partitions.partition_range(first, self.interval)
        while start <= last:
            gap = partitions.uncovered(start, end, existing)
            if gap is not None:
                name = partitions.partition_name(self.table, gap[0], self.interval)
                partition = sql.quote_name(partitions.sibling(self.table, name))
                with self.connection.cursor() as cursor:
                    cursor.execute(
                        f"CREATE TABLE {partition} PARTITION OF {sql.quote_name(self.staging)} FOR VALUES "
                        f"FROM ({partitions.bound_literal(gap[0])}) TO ({partitions.bound_literal(gap[1])})"
                    )
                self.created.append(name)
                existing = partitions.list_partitions(self.connection, self.staging)
            start, end = partitions.partition_range(end, self.interval)


def _swap(connection: BaseDatabaseWrapper, log_model: type[Model], table: str, staging: str, pk: str) -> None:
    """Give the twin the log's name, index names and sequence; the old table becomes ``<table>_unpartitioned``."""
    statements: list[str] = []
    renamed = []
    for name, _definition, _primary, _unique in _indexes(connection, table):
        index = sql.quote_name(partitions.sibling(table, name))
        renamed.append(name)
        statements.append(f"ALTER INDEX {index} RENAME TO {sql.quote_ident(partitions.derived_name(name, OLD_SUFFIX))}")
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_get_serial_sequence(%s, %s)", [sql.quote_name(table), pk])
        [old_sequence] = cursor.fetchone()
        cursor.execute("SELECT pg_get_serial_sequence(%s, %s)", [sql.quote_name(staging), pk])
        [new_sequence] = cursor.fetchone()
        for statement in statements:
            cursor.execute(statement)
        cursor.execute(f"ALTER TABLE {sql.quote_name(table)} RENAME TO {sql.quote_ident(old_name(table))}")
        if old_sequence and new_sequence:
            # The twin's sequence takes over the old one's name and continues after every id handed out.
            cursor.execute(
                "SELECT setval(%s::regclass, GREATEST((SELECT last_value FROM " + old_sequence + "), "
                f"(SELECT coalesce(max({sql.quote_ident(pk)}), 0) FROM {sql.quote_name(staging)}), 1))",
                [new_sequence],
            )
            cursor.execute("SELECT c.relname FROM pg_class AS c WHERE c.oid = %s::regclass", [old_sequence])
            [sequence_name] = cursor.fetchone()
            cursor.execute(
                f"ALTER SEQUENCE {old_sequence} RENAME TO "
                f"{sql.quote_ident(partitions.derived_name(sequence_name, OLD_SUFFIX))}"
            )
            cursor.execute(f"ALTER SEQUENCE {new_sequence} RENAME TO {sql.quote_ident(sequence_name)}")
        cursor.execute(f"ALTER TABLE {sql.quote_name(staging)} RENAME TO {sql.quote_ident(sql.bare_name(table))}")
        for name, _definition, primary, _unique in _indexes(connection, table):
            wanted = f"{sql.bare_name(table)}_pkey" if primary else _original(name, renamed)
            if wanted and wanted != name:
                index = sql.quote_name(partitions.sibling(table, name))
                cursor.execute(f"ALTER INDEX {index} RENAME TO {sql.quote_ident(wanted)}")
        for partition in partitions.list_partitions(connection, table):
            cursor.execute(partitions.guard_statement(partition.qualified_name))
    with connection.schema_editor(atomic=False) as editor:
        guard.install(editor, log_model)


def _original(temporary: str, names: list[str]) -> str | None:
    """Return the old index name whose temporary twin is ``temporary``."""
    return next((name for name in names if partitions.derived_name(name, _TEMPORARY) == temporary), None)
