"""The SQL of sealing and verifying the log, as pure functions of table and column names.

Every entry's content is hashed inside PostgreSQL, so sealing a million
entries ships no rows to Python. The canonical content of an entry is
``to_jsonb(row)::text``: the ``jsonb`` text form orders keys by a fixed rule
(shorter keys first, then bytewise) and spaces them one way, nested ``jsonb``
values (``changes``, ``context``) are themselves canonical, and only the
session settings that change how scalar values print are pinned
(:data:`PINNED_SETTINGS`). Columns added to the log after a seal are
subtracted from the object before hashing, so a migration that adds a context
field does not break older seals. The text is hashed with the built-in
``sha256()`` (PostgreSQL 11+, no extension).

Identifiers go through :func:`audit_log.sql.quote_name`; values are always
query parameters.
"""

from __future__ import annotations

from collections.abc import Mapping

from . import sql

#: Session settings that change how to_jsonb() prints a value, and their pinned values.
PINNED_SETTINGS: tuple[tuple[str, str], ...] = (
    ("TimeZone", "UTC"),  # timestamptz
    ("DateStyle", "ISO, YMD"),
    ("IntervalStyle", "postgres"),
    ("extra_float_digits", "1"),  # shortest exact float output
    ("bytea_output", "hex"),
)

#: Lowest bigint: the lower bound of the first seal, which covers every id up to its last.
MIN_ID = -(2**63)

#: The log table's columns, in table order (parameter: the quoted table name).
LOG_COLUMNS = """
SELECT a.attname FROM pg_attribute AS a
WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""

#: How many values the log's id sequence hands a session at once (parameters:
#: quoted table, key column); NULL if the key has no sequence.
SEQUENCE_CACHE = """
SELECT s.seqcache FROM pg_sequence AS s WHERE s.seqrelid = pg_get_serial_sequence(%s, %s)::regclass
"""

#: Whether both seal tables exist (parameters: their quoted names).
TABLES_EXIST = "SELECT to_regclass(%s) IS NOT NULL AND to_regclass(%s) IS NOT NULL"


def _writers(log_table: str) -> str:
    # Every transaction that has inserted into the log (or may yet, having
    # started to) holds a row-exclusive lock on it until it ends; pg_locks
    # lists those taken by the fast path too, and prepared transactions (no
    # pid). Partitions count, should the log ever be partitioned.
    return f"""ARRAY(
      SELECT DISTINCT l.virtualtransaction FROM pg_locks AS l
      WHERE l.locktype = 'relation'
        AND l.database = (SELECT d.oid FROM pg_database AS d WHERE d.datname = current_database())
        AND (l.relation = {_regclass(log_table)}
          OR l.relation IN (SELECT t.relid FROM pg_partition_tree({_regclass(log_table)}) AS t))
        AND l.mode IN ('RowExclusiveLock', 'ShareRowExclusiveLock', 'ExclusiveLock', 'AccessExclusiveLock')
        AND l.pid IS DISTINCT FROM pg_backend_pid()
      ORDER BY 1)"""


def quote_name(name: str) -> str:
    """Quote a table name as :func:`audit_log.sql.quote_name` does, for a statement with parameters."""
    return sql.escape_percent(sql.quote_name(name))


def quote_ident(name: str) -> str:
    """Quote a column name as :func:`audit_log.sql.quote_ident` does, for a statement with parameters."""
    return sql.escape_percent(sql.quote_ident(name))


def _regclass(table: str) -> str:
    # The table's name as a constant cast to regclass.
    return sql.escape_percent(sql.quote_literal(sql.quote_name(table))) + "::regclass"


def observe(log_table: str, pk: str) -> str:
    """Return the query for the highest visible id and the transactions writing to the log now.

    One statement: its snapshot is taken before ``pg_locks`` is read, so an
    id at or below the maximum that is not yet visible belongs to a
    transaction the lock list names (sequence values are handed out in
    order, and an inserting transaction holds its lock from before it draws
    an id until it ends). Also returns the id sequence's last value (NULL
    when there is none or it cannot be read): an id above it was never handed
    out by the sequence, and sealing it would put the ids the sequence hands
    out next inside a sealed range. Parameters: the quoted table, the key column.
    """
    last_value = (
        "(SELECT CASE WHEN has_sequence_privilege(s.seq, 'SELECT,USAGE') THEN pg_sequence_last_value(s.seq) END "
        "FROM (SELECT pg_get_serial_sequence(%s, %s)::regclass AS seq) AS s)"
    )
    return f"SELECT (SELECT max({quote_ident(pk)}) FROM {quote_name(log_table)}), {last_value}, {_writers(log_table)}"


def writers(log_table: str) -> str:
    """Return the query for the transactions that hold a write lock on the log now."""
    return f"SELECT {_writers(log_table)}"


def advisory_lock() -> str:
    """Return the query that takes the seal lock for the transaction, without waiting (true if taken)."""
    return "SELECT pg_try_advisory_xact_lock(hashtextextended(%s, 0))"


def insert_seal(seal_table: str) -> str:
    """Return the INSERT of a seal row whose hash is filled in once its chunks are digested.

    Returns the new id and ``sealed_at`` in microseconds since the epoch, the
    form the seal's hash covers.
    """
    return (
        f"INSERT INTO {quote_name(seal_table)} "
        '("sealed_at", "after_id", "first_id", "last_id", "entry_count", "chunk_size", "columns", "algorithm", '
        '"key_id", "previous_hash", "hash") '
        "VALUES (date_trunc('microseconds', statement_timestamp()), %s, NULL, %s, 0, %s, %s::jsonb, %s, %s, %s, "
        "''::bytea) "
        'RETURNING "id", (extract(epoch FROM "sealed_at") * 1000000)::bigint'
    )


def finish_seal(seal_table: str) -> str:
    """Return the UPDATE that records a seal's range, count and hash."""
    return (
        f'UPDATE {quote_name(seal_table)} SET "first_id" = %s, "last_id" = %s, "entry_count" = %s, "hash" = %s '
        'WHERE "id" = %s'
    )


def _entry_digest(alias: str) -> str:
    # SHA-256 of the entry's canonical text; %(extra)s: columns added after the seal.
    return f"sha256(convert_to((to_jsonb({alias}) - %(extra)s::text[])::text, 'UTF8'))"


def _chunk_aggregates(id_: str, digest: str) -> str:
    return (
        f"min({id_}), max({id_}), count(*), "
        f"string_agg(int8send({id_}), ''::bytea ORDER BY {id_}), "
        f"string_agg(substr({digest}, 1, 8), ''::bytea ORDER BY {id_}), "
        f"sha256(string_agg(int8send({id_}) || {digest}, ''::bytea ORDER BY {id_}))"
    )


def insert_chunks(log_table: str, pk: str, chunk_table: str) -> str:
    """Return the statement that digests the entries to seal into chunk rows, in one snapshot.

    Parameters: ``seal`` (the seal row's id), ``after`` (the previous seal's
    last id, or :data:`MIN_ID`), ``limit`` (the highest visible id when the
    seal began), ``settled`` (true when every transaction that was writing to
    the log then has ended since), ``gap_from`` (``after``, or 0 for the
    first seal), ``chunk`` (ids per block) and ``extra`` (an empty array).

    Unless ``settled``, an id missing at or below ``limit`` may belong to a
    transaction that has not committed yet, so the seal stops before the
    first gap: those entries are left to the next seal instead of appearing
    inside a sealed range later.

    Returns the chunks written: first and last id, count, digest, and SHA-256
    of the id and digest lists.
    """
    log, key = quote_name(log_table), quote_ident(pk)
    return f"""
WITH bound AS (
  SELECT CASE WHEN %(settled)s THEN %(limit)s::bigint ELSE coalesce((
    -- The last id before the first gap.
    SELECT coalesce(g.previous, %(gap_from)s) FROM (
      SELECT e.{key} AS id, lag(e.{key}) OVER (ORDER BY e.{key}) AS previous
      FROM {log} AS e WHERE e.{key} > %(gap_from)s AND e.{key} <= %(limit)s
    ) AS g
    WHERE g.id - coalesce(g.previous, %(gap_from)s) > 1
    ORDER BY g.id LIMIT 1), %(limit)s::bigint) END AS id
),
entries AS MATERIALIZED (
  SELECT e.{key} AS id, {_entry_digest("e")} AS digest
  FROM {log} AS e WHERE e.{key} > %(after)s AND e.{key} <= (SELECT bound.id FROM bound)
)
INSERT INTO {quote_name(chunk_table)}
  ("seal_id", "first_id", "last_id", "entry_count", "ids", "digests", "digest")
SELECT %(seal)s, {_chunk_aggregates("id", "digest")}
FROM entries GROUP BY id / %(chunk)s
RETURNING "first_id", "last_id", "entry_count", "digest", sha256("ids" || "digests")
"""


def seals(seal_table: str) -> str:
    """Return the query for every seal, oldest first, in the form its hash covers."""
    return (
        'SELECT "id", (extract(epoch FROM "sealed_at") * 1000000)::bigint, "after_id", "first_id", "last_id", '
        '"entry_count", "chunk_size", "columns"::text, "algorithm", "key_id", "previous_hash", "hash", '
        f'"verified_at" IS NOT NULL FROM {quote_name(seal_table)} ORDER BY "id"'
    )


def chunk_summaries(chunk_table: str) -> str:
    """Return the query for the chunks of some seals (parameter: their ids), as their seals' hashes cover them."""
    return (
        'SELECT "seal_id", "first_id", "last_id", "entry_count", "digest", sha256("ids" || "digests") '
        f'FROM {quote_name(chunk_table)} WHERE "seal_id" = ANY(%s) ORDER BY "seal_id", "first_id"'
    )


def mismatched_blocks(log_table: str, pk: str, seal_table: str, chunk_table: str) -> str:
    """Return the query for the blocks of some seals whose entries no longer match their chunk digest.

    Recomputes every covered entry's digest and each block's digest inside
    the server and returns only ``(seal id, block)`` pairs that differ,
    including blocks with entries where none were sealed and sealed blocks
    with no entries left. Parameters: ``seals`` (ids), ``chunk`` and ``extra``.
    """
    log, key = quote_name(log_table), quote_ident(pk)
    return f"""
WITH actual AS (
  SELECT s."id" AS seal_id, x.id / %(chunk)s AS block,
    sha256(string_agg(int8send(x.id) || x.digest, ''::bytea ORDER BY x.id)) AS digest
  FROM {quote_name(seal_table)} AS s CROSS JOIN LATERAL (
    SELECT e.{key} AS id, {_entry_digest("e")} AS digest
    FROM {log} AS e
    WHERE e.{key} > coalesce(s."after_id", {MIN_ID}) AND e.{key} <= s."last_id"
    OFFSET 0
  ) AS x
  WHERE s."id" = ANY(%(seals)s)
  GROUP BY 1, 2
), stored AS (
  SELECT c."seal_id", c."first_id" / %(chunk)s AS block, c."digest"
  FROM {quote_name(chunk_table)} AS c WHERE c."seal_id" = ANY(%(seals)s)
)
SELECT coalesce(a.seal_id, t.seal_id), coalesce(a.block, t.block)
FROM actual AS a FULL JOIN stored AS t ON t.seal_id = a.seal_id AND t.block = a.block
WHERE a.digest IS DISTINCT FROM t.digest
ORDER BY 1, 2
"""


def block_entries(log_table: str, pk: str) -> str:
    """Return the query for the ids and short digests of the entries in one block of one seal's range.

    Parameters: ``low`` and ``high`` (the block's ids, within the seal's
    range), ``chunk``, ``block`` and ``extra``.
    """
    log, key = quote_name(log_table), quote_ident(pk)
    return f"""
SELECT coalesce(string_agg(int8send(x.id), ''::bytea ORDER BY x.id), ''::bytea),
  coalesce(string_agg(substr(x.digest, 1, 8), ''::bytea ORDER BY x.id), ''::bytea)
FROM (
  SELECT e.{key} AS id, {_entry_digest("e")} AS digest FROM {log} AS e
  WHERE e.{key} BETWEEN %(low)s AND %(high)s AND e.{key} / %(chunk)s = %(block)s
  OFFSET 0
) AS x
"""


def stored_block(chunk_table: str) -> str:
    """Return the query for a stored chunk's id and digest lists (parameters: seal id, first id, last id)."""
    return (
        f'SELECT "ids", "digests" FROM {quote_name(chunk_table)} WHERE "seal_id" = %s AND "first_id" BETWEEN %s AND %s'
    )


def mark_verified(seal_table: str) -> str:
    """Return the UPDATE that records a clean verification of some seals (parameter: their ids)."""
    return f'UPDATE {quote_name(seal_table)} SET "verified_at" = statement_timestamp() WHERE "id" = ANY(%s)'


def retention_records(log_table: str, pk: str, columns: Mapping[str, str]) -> str:
    """Return the query for the recorded retention runs that removed entries from the log.

    Two kinds count. The log's guard records every DELETE that gets through
    it as an entry of the log itself (``changes``: the ids and times of the
    entries removed) with the context of whoever made it;
    ``audit_log_retention`` gives its own the type ``"retention"`` and the
    cutoff as ``context.before``. Such a batch counts only if every entry it
    removed was older than its cutoff and no entry older than the cutoff is
    left up to its last id: retention removes the oldest entries, so a
    deletion of chosen entries, however labelled, does not pass.

    On a partitioned log, retention drops whole partitions (DDL, which no
    trigger sees) and writes the record itself, with the ``partition`` and
    its ``range_start`` and ``range_end`` in ``changes``. Such a record counts
    if the range ended by the cutoff, the entries it removed lie in the range,
    and no entry of the range with an id among theirs is left: the whole
    range went, not chosen entries. (Ids are not ordered by time across
    partitions, so the prefix rule above does not apply.) Either record
    excuses at most as many deleted entries as it says it removed
    (``entries``): the caller checks that.

    Parameters: the log table's name as the guard records it, the retention
    context type.

    Returns:
        Rows of (recording entry id, first id removed, last id removed, how many it removed).
    """
    log, key = quote_name(log_table), quote_ident(pk)
    at, action, table, kind, changes, context = (
        quote_ident(columns[name]) for name in ("at", "action", "table_name", "context_type", "changes", "context")
    )
    before = f"(r.{context} ->> 'before')::timestamptz"
    first_id, last_id = f"(r.{changes} ->> 'first_id')::bigint", f"(r.{changes} ->> 'last_id')::bigint"
    start, end = f"(r.{changes} ->> 'range_start')::timestamptz", f"(r.{changes} ->> 'range_end')::timestamptz"
    return f"""
SELECT r.{key}, {first_id}, {last_id}, (r.{changes} ->> 'entries')::bigint
FROM {log} AS r
WHERE r.{table} = %s AND r.{action} = 'DELETE' AND r.{kind} = %s
  AND r.{changes} ?& ARRAY['entries', 'first_id', 'last_id', 'last_at'] AND r.{context} ? 'before'
  AND (r.{changes} ->> 'last_at')::timestamptz < {before}
  AND CASE WHEN r.{changes} ? 'partition' THEN
    r.{changes} ?& ARRAY['first_at', 'range_start', 'range_end'] AND {end} <= {before}
    AND (r.{changes} ->> 'first_at')::timestamptz >= {start} AND (r.{changes} ->> 'last_at')::timestamptz < {end}
    AND NOT EXISTS (
      SELECT FROM {log} AS e WHERE e.{at} >= {start} AND e.{at} < {end} AND e.{key} BETWEEN {first_id} AND {last_id}
    )
  ELSE NOT EXISTS (SELECT FROM {log} AS e WHERE e.{at} < {before} AND e.{key} <= {last_id}) END
ORDER BY 1
"""
