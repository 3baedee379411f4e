"""The opt-in partitioned log: range partitions on ``at``, one per month, week or day.

With ``AUDIT_LOG_PARTITIONING`` set, the log table's migration creates it as
``PARTITION BY RANGE (at)`` (see ``db/backend/schema.py``), with a default
partition and partitions for the current interval and a few ahead;
``manage.py audit_log_partitions`` (from cron, and after every ``migrate``)
keeps creating them ahead. Retention (``archive.py``) detaches and drops whole
partitions found with :func:`list_partitions`.

Boundaries are UTC midnights. A partition's range must be one fixed pair of
instants, the same whichever ``TIME_ZONE`` the project or the database
session has, or a change of either (or a daylight-saving shift) would leave
gaps or overlaps between partitions created at different times; UTC has no
shifts, and ``at`` is a ``timestamptz`` stored in UTC anyway.

Partition names are derived from the log table's name: ``<table>_p202612``
(month), ``<table>_p20261130`` (week, by its Monday; day), ``<table>_default``;
a long table name is cut (with a hash) so the name fits 63 bytes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import OperationalError, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.base.schema import BaseDatabaseSchemaEditor

from . import guard, sql
from .conf import PARTITION_INTERVALS

#: Partitions ``audit_log_partitions`` and ``migrate`` keep ready beyond the current one.
DEFAULT_AHEAD = 3

#: The suffix of the default partition's name.
DEFAULT_SUFFIX = "default"


@dataclass(frozen=True)
class Partition:
    """One partition of the log table.

    Attributes:
        name: The partition's table name, unquoted and without schema.
        start: First instant of the range (inclusive, UTC); None for the default partition.
        end: End of the range (exclusive, UTC); None for the default partition.
        is_default: Whether this is the default partition (rows outside every range).
        rows: Row count: exact with ``list_partitions(..., exact_counts=True)``, else
            PostgreSQL's planner estimate (``pg_class.reltuples``, 0 before the first
            ANALYZE), see ``rows_exact``.
        bytes: Size on disk with indexes and TOAST (``pg_total_relation_size``).
        schema: The schema the partition is in.
        rows_exact: Whether ``rows`` was counted.
    """

    name: str
    start: datetime | None
    end: datetime | None
    is_default: bool
    rows: int
    bytes: int
    schema: str = "public"
    rows_exact: bool = False

    @property
    def qualified_name(self) -> str:
        """The partition as Django spells a schema-qualified table (``'"schema"."name"'``)."""
        return sql.qualified(self.schema, self.name)


def check_interval(interval: str) -> str:
    """Return ``interval`` if it is ``"month"``, ``"week"`` or ``"day"``.

    Raises:
        ValueError: Naming the accepted values.
    """
    if interval not in PARTITION_INTERVALS:
        raise ValueError(f"Partition interval must be one of {', '.join(PARTITION_INTERVALS)}, not {interval!r}.")
    return interval


def partition_range(moment: datetime, interval: str) -> tuple[datetime, datetime]:
    """Return the UTC range ``[start, end)`` of the partition holding ``moment``.

    Month: from the 1st, 00:00 UTC; week: from the ISO week's Monday, 00:00
    UTC; day: from 00:00 UTC. UTC (see the module docstring) keeps every
    range one fixed pair of instants whatever the time zone settings.

    Args:
        moment: An aware datetime (a naive one is taken as UTC).
        interval: ``"month"``, ``"week"`` or ``"day"``.

    Returns:
        ``(start, end)`` as aware UTC datetimes.
    """
    check_interval(interval)
    utc = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    day = utc.replace(hour=0, minute=0, second=0, microsecond=0)
    if interval == "day":
        return day, day + timedelta(days=1)
    if interval == "week":
        start = day - timedelta(days=day.weekday())
        return start, start + timedelta(days=7)
    start = day.replace(day=1)
    end = start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)
    return start, end


def partition_ranges(interval: str, *, ahead: int, now: datetime | None = None) -> list[tuple[datetime, datetime]]:
    """Return the ranges of the current partition and of ``ahead`` more, in order."""
    if ahead < 0:
        raise ValueError("ahead must be 0 or more.")
    ranges = [partition_range(now or datetime.now(UTC), interval)]
    for _ in range(ahead):
        ranges.append(partition_range(ranges[-1][1], interval))
    return ranges


def _cut(name: str, room: int) -> str:
    """Return ``name`` if it fits ``room`` bytes, else its head and a hash of the whole (as sql.object_name)."""
    encoded = name.encode()
    if len(encoded) <= room:
        return name
    digest = hashlib.md5(encoded, usedforsecurity=False).hexdigest()[:8]
    return f"{encoded[: room - len(digest) - 1].decode(errors='ignore')}_{digest}"


def derived_name(table: str, suffix: str) -> str:
    """Return ``<table>_<suffix>`` (bare table name), the table part cut (with a hash) to fit 63 bytes."""
    tail = f"_{suffix}"
    return _cut(sql.bare_name(table), sql.MAX_IDENTIFIER_BYTES - len(tail.encode())) + tail


def partition_name(table: str, start: datetime, interval: str) -> str:
    """Return the (unquoted, unqualified) name of the partition of ``table`` starting at ``start``.

    Args:
        table: The log table, as Django spells it (may be schema-qualified).
        start: The partition's first instant (UTC).
        interval: Its interval: a month partition is named by year and month, others by date.
    """
    start = start.astimezone(UTC)
    label = f"{start:%Y%m}" if check_interval(interval) == "month" and start.day == 1 else f"{start:%Y%m%d}"
    return derived_name(table, f"p{label}")


def default_partition_name(table: str) -> str:
    """Return the (unquoted, unqualified) name of the default partition of ``table``."""
    return derived_name(table, DEFAULT_SUFFIX)


def sibling(table: str, name: str) -> str:
    """Return ``name`` as Django would spell a table in ``table``'s schema (quoted SQL via sql.quote_name)."""
    schema = sql.function_schema(table)
    return sql.qualified(schema, name) if schema else name


def bound_literal(moment: datetime) -> str:
    """Return ``moment`` as a partition-bound literal."""
    # An explicit offset: the literal means the same instant in any session time zone.
    return sql.quote_literal(moment.astimezone(UTC).isoformat(sep=" "))


# --- statements ---------------------------------------------------------


def partition_by_clause(at_column: str) -> str:
    """Return ``PARTITION BY RANGE ("at")`` for the log's ``at`` column."""
    return f"PARTITION BY RANGE ({sql.quote_ident(at_column)})"


def guard_statement(partition: str) -> str:
    """Return the statement that puts the log's append-only guard on one partition too.

    Statement triggers of a partitioned table fire only for statements naming
    it, so an UPDATE or DELETE naming a partition directly would pass the
    parent's guard; the owner's maintenance setting lets both through as there.
    """
    return (
        f"CREATE OR REPLACE TRIGGER {sql.quote_ident(guard.GUARD_TRIGGER)} BEFORE UPDATE OR DELETE ON "
        f"{sql.quote_name(partition)} FOR EACH STATEMENT EXECUTE FUNCTION {sql.quote_ident(guard.GUARD_FUNCTION)}()"
    )


def create_default_statements(table: str) -> list[str]:
    """Return the statements creating the default partition of ``table`` (if missing) and its guard."""
    default = sibling(table, default_partition_name(table))
    return [
        f"CREATE TABLE IF NOT EXISTS {sql.quote_name(default)} PARTITION OF {sql.quote_name(table)} DEFAULT",
        guard_statement(default),
    ]


def create_partition_statements(table: str, start: datetime, end: datetime, interval: str) -> list[str]:
    """Return the statements creating the partition ``[start, end)`` of ``table`` (if missing) and its guard."""
    partition = sibling(table, partition_name(table, start, interval))
    return [
        f"CREATE TABLE IF NOT EXISTS {sql.quote_name(partition)} PARTITION OF {sql.quote_name(table)} "
        f"FOR VALUES FROM ({bound_literal(start)}) TO ({bound_literal(end)})",
        guard_statement(partition),
    ]


# --- introspection ------------------------------------------------------

_IS_PARTITIONED = "SELECT relkind = 'p' FROM pg_class WHERE oid = to_regclass(%s)"

# Bounds are cast back in SQL: pg_get_expr() prints them in the session's time
# zone, and the same session reads that text back as the same instant.
_PARTITIONS = r"""
SELECT c.relname, n.nspname, b.bound = 'DEFAULT',
  (regexp_match(b.bound, '^FOR VALUES FROM \(''([^'']*)''\) TO'))[1]::timestamptz,
  (regexp_match(b.bound, ' TO \(''([^'']*)''\)$'))[1]::timestamptz,
  GREATEST(c.reltuples, 0)::bigint, pg_total_relation_size(c.oid)
FROM pg_inherits AS i
JOIN pg_class AS c ON c.oid = i.inhrelid
JOIN pg_namespace AS n ON n.oid = c.relnamespace
CROSS JOIN LATERAL (SELECT pg_get_expr(c.relpartbound, c.oid) AS bound) AS b
WHERE i.inhparent = to_regclass(%s)
"""


def is_partitioned(connection: BaseDatabaseWrapper, table: str) -> bool:
    """Return whether ``table`` exists and is a partitioned table.

    Args:
        connection: The database connection.
        table: The table, as Django spells it (may be schema-qualified).
    """
    with connection.cursor() as cursor:
        cursor.execute(_IS_PARTITIONED, [sql.quote_name(table)])
        row = cursor.fetchone()
    return bool(row and row[0])


def list_partitions(connection: BaseDatabaseWrapper, table: str, *, exact_counts: bool = False) -> list[Partition]:
    """Return the partitions of ``table``, ordered by start, the default partition last.

    Args:
        connection: The database connection.
        table: The partitioned table, as Django spells it; a table that is not
            partitioned (or missing) has none.
        exact_counts: Count every partition's rows (a full scan of each)
            instead of taking the planner's estimate.

    Returns:
        One :class:`Partition` per partition, ranges in UTC.
    """
    with connection.cursor() as cursor:
        cursor.execute(_PARTITIONS, [sql.quote_name(table)])
        rows = cursor.fetchall()
        partitions = []
        for name, schema, is_default, start, end, estimate, size in rows:
            count = estimate
            if exact_counts:
                cursor.execute(f"SELECT count(*) FROM {sql.quote_name(sql.qualified(schema, name))}")
                [count] = cursor.fetchone()
            partitions.append(
                Partition(
                    name=name,
                    start=start.astimezone(UTC) if start else None,
                    end=end.astimezone(UTC) if end else None,
                    is_default=bool(is_default),
                    rows=int(count),
                    bytes=int(size),
                    schema=schema,
                    rows_exact=exact_counts,
                )
            )
    far = datetime.max.replace(tzinfo=UTC)
    return sorted(partitions, key=lambda p: (p.is_default, p.start or far, p.name))


def default_partition(connection: BaseDatabaseWrapper, table: str) -> Partition | None:
    """Return the default partition of ``table``, or None if it has none."""
    return next((p for p in list_partitions(connection, table) if p.is_default), None)


def default_partition_has_rows(connection: BaseDatabaseWrapper, table: str) -> bool:
    """Return whether the default partition of ``table`` holds any row (an exact, cheap EXISTS)."""
    default = default_partition(connection, table)
    if default is None:
        return False
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT EXISTS (SELECT FROM {sql.quote_name(default.qualified_name)})")
        [exists] = cursor.fetchone()
    return bool(exists)


# --- creating partitions ------------------------------------------------


def uncovered(start: datetime, end: datetime, existing: list[Partition]) -> tuple[datetime, datetime] | None:
    """Return the first part of ``[start, end)`` no existing partition covers (None: all covered).

    Partitions made under another interval (the setting changed) may overlap
    the wanted range; only the gap is created, so nothing overlaps.
    """
    ranged = sorted((p.start, p.end) for p in existing if p.start is not None and p.end is not None)
    for first, last in ranged:
        if first <= start < last:
            start = last
    if start >= end:
        return None
    following = [first for first, _ in ranged if start < first < end]
    return start, min([end, *following])


def create_partitions(
    connection: BaseDatabaseWrapper,
    table: str,
    interval: str,
    *,
    ahead: int,
    now: datetime | None = None,
    schema_editor: BaseDatabaseSchemaEditor | None = None,
    at_column: str = "at",
    cover_default: bool = True,
) -> list[str]:
    """Create the default partition, the current partition and ``ahead`` more of ``table``; idempotent.

    Ranges already covered by a partition are skipped. When the default
    partition holds rows inside a new range (or any, see ``cover_default``),
    they are moved: the partition
    is created as a standalone table, the rows are copied into it and
    deleted from the default partition (under the guard's maintenance
    setting), and it is attached, all in one transaction holding an
    exclusive lock on the log, so every row ends in exactly one place.

    Args:
        connection: The database connection.
        table: The partitioned log table, as Django spells it.
        interval: ``"month"``, ``"week"`` or ``"day"``.
        ahead: How many partitions to have beyond the current one.
        now: The moment taken as now (default: the current time).
        schema_editor: Run the DDL through it (a migration; ``sqlmigrate``
            shows it). When it only collects SQL, the statements for an empty
            new table are emitted without looking at the database.
        at_column: The partition key column.
        cover_default: Also create the partitions of every range the default
            partition holds rows in (moving them), however old.

    Returns:
        The names (unquoted, unqualified) of the partitions created.

    Raises:
        ValueError: If ``table`` is not a partitioned table.
    """
    check_interval(interval)
    wanted = partition_ranges(interval, ahead=ahead, now=now)
    if schema_editor is not None and schema_editor.collect_sql:
        statements = create_default_statements(table)
        for start, end in wanted:
            statements += create_partition_statements(table, start, end, interval)
        for statement in statements:
            schema_editor.execute(statement, params=None)
        return [default_partition_name(table), *(partition_name(table, start, interval) for start, _ in wanted)]

    def run(statement: str) -> None:
        if schema_editor is not None:
            schema_editor.execute(statement, params=None)
        else:
            with connection.cursor() as cursor:
                cursor.execute(statement)

    if not is_partitioned(connection, table):
        raise ValueError(
            f"{table} is not a partitioned table. Convert it with manage.py audit_log_partitions --convert."
        )
    created: list[str] = []
    with transaction.atomic(using=connection.alias):
        existing = list_partitions(connection, table)
        default = next((p.qualified_name for p in existing if p.is_default), None)
        if default is None:
            for statement in create_default_statements(table):
                run(statement)
            created.append(default_partition_name(table))
        elif cover_default:
            wanted = sorted({*wanted, *_default_ranges(connection, default, interval, at_column)})
        gaps = [gap for start, end in wanted if (gap := uncovered(start, end, existing)) is not None]
        if gaps and default is not None:
            # CREATE ... PARTITION OF locks the log anyway; taking the lock first
            # means no entry can reach the default partition between the look at
            # it below and the new partition's creation.
            _lock(connection, table, timeout=schema_editor is None)
        for gap in gaps:
            name = partition_name(table, gap[0], interval)
            _check_free(connection, table, name)
            if default is not None and _default_rows_in(connection, default, gap, at_column):
                _move_out_of_default(connection, table, default, name, gap, at_column, run)
            else:
                for statement in create_partition_statements(table, *gap, interval=interval):
                    run(statement)
            created.append(name)
            existing = list_partitions(connection, table)
    return created


#: How long ``audit_log_partitions`` waits for the lock on the log (writers queue behind a waiting lock).
LOCK_TIMEOUT = "5s"


def _lock(connection: BaseDatabaseWrapper, table: str, *, timeout: bool) -> None:
    """Lock the log against writers for the rest of the transaction, giving up after LOCK_TIMEOUT if ``timeout``.

    Raises:
        OperationalError: With a message saying to run the command again later.
    """
    with connection.cursor() as cursor:
        if not timeout:  # a migration: it waits for its locks like every other statement of it
            cursor.execute(f"LOCK TABLE {sql.quote_name(table)} IN ACCESS EXCLUSIVE MODE")
            return
        cursor.execute("SELECT current_setting('lock_timeout')")
        [previous] = cursor.fetchone()
        cursor.execute("SELECT set_config('lock_timeout', %s, true)", [LOCK_TIMEOUT])
        try:
            cursor.execute(f"LOCK TABLE {sql.quote_name(table)} IN ACCESS EXCLUSIVE MODE")
        except OperationalError as error:
            raise OperationalError(
                f"Could not lock {table} within {LOCK_TIMEOUT} to create partitions: a long transaction is using "
                "it. Run the command again later."
            ) from error
        cursor.execute("SELECT set_config('lock_timeout', %s, true)", [previous])


def _check_free(connection: BaseDatabaseWrapper, table: str, name: str) -> None:
    """Refuse to create partition ``name`` when a table of that name exists outside the log.

    Raises:
        ValueError: Naming the table and what to do with it.
    """
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [sql.quote_name(sibling(table, name))])
        [taken] = cursor.fetchone()
    if taken:
        raise ValueError(
            f"A table named {name} exists but is not a partition of {table} (a detached partition?). Attach it "
            f"(ALTER TABLE ... ATTACH PARTITION), or rename or drop it, then run this again."
        )


def _default_ranges(
    connection: BaseDatabaseWrapper, default_partition: str, interval: str, at_column: str
) -> list[tuple[datetime, datetime]]:
    """Return the ranges of ``interval`` that rows of the default partition fall in."""
    default = sql.quote_name(default_partition)
    # date_trunc's week starts on Monday, as ISO weeks (and partition_range) do.
    unit = {"month": "month", "week": "week", "day": "day"}[interval]
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT DISTINCT date_trunc(%s, {sql.quote_ident(at_column)} AT TIME ZONE 'UTC') FROM {default}", [unit]
        )
        starts = [row[0].replace(tzinfo=UTC) for row in cursor.fetchall()]
    return [partition_range(start, interval) for start in starts]


def _default_rows_in(
    connection: BaseDatabaseWrapper, default_partition: str, gap: tuple[datetime, datetime], at_column: str
) -> int:
    default = sql.quote_name(default_partition)
    at = sql.quote_ident(at_column)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {default} WHERE {at} >= %s AND {at} < %s", list(gap))
        [count] = cursor.fetchone()
    return int(count)


def _move_out_of_default(
    connection: BaseDatabaseWrapper,
    table: str,
    default_partition: str,
    name: str,
    gap: tuple[datetime, datetime],
    at_column: str,
    run: Any,
) -> None:
    """Create partition ``name`` for ``gap`` from the default partition's rows in it.

    The caller holds a transaction and the exclusive lock on the log, so no
    writer adds rows to the range between the move and the attach.
    """
    parent = sql.quote_name(table)
    default = sql.quote_name(default_partition)
    partition = sql.quote_name(sibling(table, name))
    at = sql.quote_ident(at_column)
    where = f"{at} >= {bound_literal(gap[0])} AND {at} < {bound_literal(gap[1])}"
    run(f"CREATE TABLE {partition} (LIKE {parent} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
    # ATTACH then skips its scan of the new partition: the constraint proves the range.
    check = sql.quote_ident(derived_name(name, "range"))
    run(f"ALTER TABLE {partition} ADD CONSTRAINT {check} CHECK ({where})")
    run(guard.maintenance_on())
    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {partition} SELECT * FROM {default} WHERE {where}")
        copied = cursor.rowcount
        # The default partition is named directly: its own guard trigger lets
        # the owner's maintenance through; the parent's record trigger is not
        # fired, as no entry leaves the log (they move between its partitions).
        cursor.execute(f"DELETE FROM {default} WHERE {where}")
        deleted = cursor.rowcount
    run(guard.maintenance_off())
    if copied != deleted:  # pragma: no cover  # the exclusive lock rules it out; never drop rows on a surprise
        raise RuntimeError(f"Moving rows into {name}: copied {copied} but deleted {deleted}; rolled back.")
    bounds = f"FROM ({bound_literal(gap[0])}) TO ({bound_literal(gap[1])})"
    run(f"ALTER TABLE {parent} ATTACH PARTITION {partition} FOR VALUES {bounds}")
    run(f"ALTER TABLE {partition} DROP CONSTRAINT {check}")
    run(guard_statement(sibling(table, name)))
