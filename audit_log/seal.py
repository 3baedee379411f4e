"""Tamper evidence: seal the log into a hash chain, and verify it.

:func:`seal_log` (``manage.py audit_log_seal``) digests every entry written
since the previous seal inside PostgreSQL (see :mod:`audit_log.seal_sql` for
the canonical form), stores per-block digests in
:class:`~audit_log.seal_models.SealChunk` rows, and writes a
:class:`~audit_log.seal_models.Seal` whose hash covers the previous seal's
hash and those digests: SHA-256, or HMAC-SHA256 when ``AUDIT_LOG_SEAL_KEY`` is
set (the key stays in this process). :func:`verify_log`
(``manage.py audit_log_verify``) recomputes them and reports every entry
changed, deleted or inserted since, by id, and every broken link.

Neither touches the write path: sealing reads the log under ``ACCESS SHARE``
(which only ``ACCESS EXCLUSIVE`` conflicts with) and never waits for a writer
to do anything. Entries are committed out of id order, so a seal stops short of
ids that a transaction still in progress may commit (see :func:`seal_log`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import struct
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from django.db import DEFAULT_DB_ALIAS, IntegrityError, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.utils import CursorWrapper

from . import seal_sql
from .conf import conf
from .loading import get_log_entry_model
from .seal_models import Seal, SealChunk
from .triggers import column_of

#: Entries are digested in blocks of this many ids: a changed entry costs
#: re-reading one block to name it.
CHUNK_SIZE = 1000

#: How long :func:`seal_log` waits, by default, for transactions that were
#: writing to the log when it started, before sealing only what is settled.
DEFAULT_WAIT = 10.0

PLAIN = "sha256"
KEYED = "hmac-sha256"

_MAGIC = b"django-postgres-audit-log seal v1\n"
_KEY_ID_LABEL = b"django-postgres-audit-log seal key id"


class SealError(Exception):
    """Sealing or verifying cannot start: a setting, a missing table, another seal running."""


# --- the seal's hash -----------------------------------------------------------


@dataclass(frozen=True)
class ChunkSummary:
    """What a seal's hash covers of one chunk.

    Attributes:
        first_id: Its lowest entry id.
        last_id: Its highest entry id.
        entry_count: How many entries it holds.
        digest: SHA-256 over the ids and full digests of its entries.
        listing: SHA-256 over its stored id and short-digest lists.
    """

    first_id: int
    last_id: int
    entry_count: int
    digest: bytes
    listing: bytes


@dataclass(frozen=True)
class SealRecord:
    """One seal row, as its hash covers it."""

    id: int
    sealed_at_us: int
    after_id: int | None
    first_id: int | None
    last_id: int
    entry_count: int
    chunk_size: int
    columns: tuple[str, ...]
    algorithm: str
    key_id: str
    previous_hash: bytes
    hash: bytes
    verified: bool = False

    @property
    def label(self) -> str:
        """``seal #N (entries A-B)``, for messages."""
        first = self.first_id if self.first_id is not None else self.last_id
        return f"seal #{self.id} (entries {first}-{self.last_id})" if self.entry_count else f"seal #{self.id}"


def key_fingerprint(key: bytes) -> str:
    """Return a short id of ``key`` that tells keys apart and reveals nothing about them."""
    return hmac.new(key, _KEY_ID_LABEL, hashlib.sha256).hexdigest()[:16]


def _blob(value: bytes) -> bytes:
    return struct.pack(">I", len(value)) + value


def _int(value: int | None) -> bytes:
    return b"\x00" if value is None else b"\x01" + struct.pack(">q", value)


def seal_message(record: SealRecord, chunks: Sequence[ChunkSummary]) -> bytes:
    """Return the bytes a seal's hash is computed over.

    Every field is length-prefixed or fixed-size, so no two different seals
    give the same message: the previous hash, when it was sealed, the range
    and count, the chunk size, the columns hashed, the algorithm and key id,
    and each chunk's range, count, digest and the hash of its stored lists.
    """
    parts = [
        _MAGIC,
        _blob(record.previous_hash),
        struct.pack(">q", record.sealed_at_us),
        _int(record.after_id),
        _int(record.first_id),
        _int(record.last_id),
        _int(record.entry_count),
        _int(record.chunk_size),
        _blob(json.dumps(list(record.columns)).encode()),
        _blob(record.algorithm.encode()),
        _blob(record.key_id.encode()),
        struct.pack(">q", len(chunks)),
    ]
    for chunk in chunks:
        parts.append(struct.pack(">qqq", chunk.first_id, chunk.last_id, chunk.entry_count))
        parts.append(_blob(chunk.digest))
        parts.append(_blob(chunk.listing))
    return b"".join(parts)


def seal_hash(message: bytes, key: bytes | None) -> bytes:
    """Return HMAC-SHA256 of ``message`` with ``key``, or its SHA-256 without one."""
    if key is None:
        return hashlib.sha256(message).digest()
    return hmac.new(key, message, hashlib.sha256).digest()


# --- the tables ----------------------------------------------------------------


@dataclass(frozen=True)
class Tables:
    """The log table, its key column and the seal tables, by name."""

    log: str
    pk: str
    seal: str
    chunk: str
    #: Column of each field of ``BaseLogEntry`` the verification reads, by field name.
    fields: tuple[tuple[str, str], ...] = ()

    @classmethod
    def current(cls) -> Tables:
        """Return the tables of the configured log-entry model."""
        model = get_log_entry_model()
        fields = tuple(
            (name, column_of(model._meta.get_field(name)))
            for name in ("at", "action", "table_name", "context_type", "changes", "context")
        )
        return cls(
            model._meta.db_table, column_of(model._meta.pk), Seal._meta.db_table, SealChunk._meta.db_table, fields
        )


def log_columns(cursor: CursorWrapper, tables: Tables) -> tuple[str, ...]:
    """Return the log table's columns as the database has them now, in table order."""
    cursor.execute(seal_sql.LOG_COLUMNS, [seal_sql.sql.quote_name(tables.log)])
    return tuple(name for (name,) in cursor.fetchall())


def check_tables(cursor: CursorWrapper, tables: Tables, using: str) -> None:
    """Raise :class:`SealError` unless the log and the seal tables exist."""
    quote = seal_sql.sql.quote_name
    cursor.execute(seal_sql.TABLES_EXIST, [quote(tables.seal), quote(tables.chunk)])
    if not cursor.fetchone()[0]:
        raise SealError(
            f"The seal tables do not exist in database {using!r}: run `manage.py migrate --database {using}`."
        )
    cursor.execute(seal_sql.LOG_COLUMNS, [quote(tables.log)])
    if not cursor.fetchall():
        raise SealError(f"The log table {tables.log} does not exist in database {using!r}: run migrate first.")


@contextmanager
def pinned_settings(cursor: CursorWrapper) -> Iterator[None]:
    """Pin the settings the canonical text depends on for the current transaction, then put them back."""
    names = [name for name, _ in seal_sql.PINNED_SETTINGS]
    cursor.execute("SELECT " + ", ".join(["current_setting(%s)"] * len(names)), names)
    saved = cursor.fetchone()
    pinned = [value for pair in seal_sql.PINNED_SETTINGS for value in pair]
    cursor.execute("SELECT " + ", ".join(["set_config(%s, %s, true)"] * len(names)), pinned)
    yield
    if cursor.db.needs_rollback:
        return  # the transaction (or savepoint) is rolled back, and the settings with it
    # Only on success: an error has aborted the transaction, whose end restores them anyway.
    restored = [value for pair in zip(names, saved, strict=True) for value in pair]
    cursor.execute("SELECT " + ", ".join(["set_config(%s, %s, true)"] * len(names)), restored)


_SEAL_FIELDS = (
    "id, sealed_at_us, after_id, first_id, last_id, entry_count, chunk_size, columns, algorithm, key_id, "
    "previous_hash, hash, verified"
)


def read_seals(cursor: CursorWrapper, tables: Tables) -> list[SealRecord]:
    """Return every seal, oldest first."""
    cursor.execute(seal_sql.seals(tables.seal))
    return [
        SealRecord(
            id=row[0],
            sealed_at_us=row[1],
            after_id=row[2],
            first_id=row[3],
            last_id=row[4],
            entry_count=row[5],
            chunk_size=row[6],
            columns=tuple(json.loads(row[7])),
            algorithm=row[8],
            key_id=row[9],
            previous_hash=bytes(row[10]),
            hash=bytes(row[11]),
            verified=row[12],
        )
        for row in cursor.fetchall()
    ]


def chunk_summary(row: Sequence[Any]) -> ChunkSummary:
    """Build a chunk's summary from a row of (first id, last id, count, digest, listing hash)."""
    return ChunkSummary(int(row[0]), int(row[1]), int(row[2]), bytes(row[3]), bytes(row[4]))


# --- sealing -------------------------------------------------------------------


@dataclass(frozen=True)
class SealResult:
    """A seal just written.

    Attributes:
        seal_id: Its id.
        after_id: The previous seal's last entry id (None for the first seal).
        first_id: The lowest entry id sealed (None: an empty seal that only
            re-anchors the chain under the current key).
        last_id: The highest entry id covered.
        entry_count: How many entries it sealed.
        hash: Its hash: keep it somewhere the database's users cannot write
            (``audit_log_verify --anchor``).
        algorithm: ``"sha256"`` or ``"hmac-sha256"``.
        held_back: True if it stopped short of entries that transactions still
            in progress may commit (they go into the next seal).
        unsequenced: The highest id in the log when it is above the id
            sequence's last value (an id the sequence never handed out,
            inserted with an explicit id); such entries are not sealed.
    """

    seal_id: int
    after_id: int | None
    first_id: int | None
    last_id: int
    entry_count: int
    hash: bytes
    algorithm: str
    held_back: bool = False
    unsequenced: int | None = None


def _wait_for(cursor: CursorWrapper, tables: Tables, pending: set[str], timeout: float) -> bool:
    """Wait up to ``timeout`` seconds for the ``pending`` transactions to end; return True if they did."""
    deadline = time.monotonic() + timeout
    delay = 0.02
    while True:
        cursor.execute(seal_sql.writers(tables.log))
        pending &= set(cursor.fetchone()[0])
        if not pending:
            return True
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        time.sleep(min(delay, remaining))
        delay = min(delay * 2, 0.5)


def seal_log(
    using: str = DEFAULT_DB_ALIAS, *, wait: float = DEFAULT_WAIT, chunk_size: int = CHUNK_SIZE
) -> SealResult | None:
    """Seal every entry written since the previous seal, as far as it is settled.

    Entries are committed out of id order: a transaction may commit entry 7
    after entry 8 is visible. So, in one statement, the highest visible id is
    read first and then the transactions holding a write lock on the log (an
    inserting transaction holds it from before it draws an id until it
    ends). Any id at or below that maximum that is not visible yet belongs to
    one of them. The seal waits up to ``wait`` seconds for those to end, then
    seals up to the maximum; if some are still open, it seals only up to the
    first missing id, and the next seal takes the rest. Nothing waits on the
    seal: it reads the log under ``ACCESS SHARE``, writes only its own
    tables, and the digests are computed in one statement (one snapshot).

    With ``AUDIT_LOG_SEAL_KEY`` set, the seal is HMAC-SHA256; if nothing new
    was written but the newest seal was made without this key, an empty seal
    is written so the chain ends in a keyed one.

    Args:
        using: The database alias of the log.
        wait: Seconds to wait for transactions that were writing to the log.
        chunk_size: Ids per block digest.

    Returns:
        The new seal, or None if there was nothing to seal.

    Raises:
        SealError: If the seal tables are missing, the log's id sequence hands
            out ids in batches, another seal is running, or the connection is
            inside a transaction that is not READ COMMITTED.
    """
    if chunk_size < 1:
        raise ValueError("chunk_size must be at least 1")
    connection = connections[using]
    tables = Tables.current()
    key = conf.seal_key
    algorithm, key_id = (KEYED, key_fingerprint(key)) if key is not None else (PLAIN, "")
    with connection.cursor() as cursor:
        check_tables(cursor, tables, using)
        _check_session(cursor, connection, tables)
        cursor.execute(seal_sql.observe(tables.log, tables.pk), [seal_sql.sql.quote_name(tables.log), tables.pk])
        highest, last_value, writers = cursor.fetchone()
        limit = highest if last_value is None or highest is None else min(highest, last_value)
        settled = not writers or _wait_for(cursor, tables, set(writers), wait)
    with transaction.atomic(using=using), connection.cursor() as cursor, pinned_settings(cursor):
        cursor.execute(seal_sql.advisory_lock(), [f"audit_log_seal {tables.log}"])
        if not cursor.fetchone()[0]:
            raise SealError("Another audit_log_seal is sealing this log right now; run it again later.")
        records = read_seals(cursor, tables)
        previous = records[-1] if records else None
        after = previous.last_id if previous is not None else None
        nothing_new = limit is None or (after is not None and limit <= after)
        # A chain that ends in a seal made otherwise (without the key) gets one made with it, even if empty.
        same_key = previous is None or (previous.algorithm, previous.key_id) == (algorithm, key_id)
        if nothing_new and same_key:
            return None
        columns = log_columns(cursor, tables)
        try:
            cursor.execute(
                seal_sql.insert_seal(tables.seal),
                [
                    after,
                    after if after is not None else 0,
                    chunk_size,
                    json.dumps(list(columns)),
                    algorithm,
                    key_id,
                    previous.hash if previous is not None else b"",
                ],
            )
        except IntegrityError as error:  # the unique previous hash: a seal that took the lock just after ours
            raise SealError("Another audit_log_seal sealed this log at the same time; run it again.") from error
        seal_id, sealed_at_us = cursor.fetchone()
        chunks: list[ChunkSummary] = []
        if not nothing_new:
            cursor.execute(
                seal_sql.insert_chunks(tables.log, tables.pk, tables.chunk),
                {
                    "seal": seal_id,
                    "after": after if after is not None else seal_sql.MIN_ID,
                    "gap_from": after if after is not None else 0,
                    "limit": limit,
                    "settled": settled,
                    "chunk": chunk_size,
                    "extra": [],
                },
            )
            chunks = sorted((chunk_summary(row) for row in cursor.fetchall()), key=lambda chunk: chunk.first_id)
        if not chunks and same_key:
            # Everything new is held back behind a transaction still in progress.
            transaction.set_rollback(True, using=using)
            return None
        record = SealRecord(
            id=seal_id,
            sealed_at_us=sealed_at_us,
            after_id=after,
            first_id=chunks[0].first_id if chunks else None,
            last_id=chunks[-1].last_id if chunks else (after or 0),
            entry_count=sum(chunk.entry_count for chunk in chunks),
            chunk_size=chunk_size,
            columns=columns,
            algorithm=algorithm,
            key_id=key_id,
            previous_hash=previous.hash if previous is not None else b"",
            hash=b"",
        )
        digest = seal_hash(seal_message(record, chunks), key)
        cursor.execute(
            seal_sql.finish_seal(tables.seal),
            [record.first_id, record.last_id, record.entry_count, digest, seal_id],
        )
    return SealResult(
        seal_id=seal_id,
        after_id=after,
        first_id=record.first_id,
        last_id=record.last_id,
        entry_count=record.entry_count,
        hash=digest,
        algorithm=algorithm,
        held_back=not settled and not nothing_new and record.last_id < limit,
        unsequenced=highest if highest is not None and limit is not None and highest > limit else None,
    )


def _check_session(cursor: CursorWrapper, connection: BaseDatabaseWrapper, tables: Tables) -> None:
    if connection.in_atomic_block:
        # Each statement must see what committed before it: a snapshot taken
        # before the seal's first statement could hide entries it then seals past.
        cursor.execute("SELECT current_setting('transaction_isolation')")
        isolation = cursor.fetchone()[0]
        if isolation != "read committed":
            raise SealError(f"Seal outside a transaction, or in a READ COMMITTED one (this one is {isolation}).")
    cursor.execute(seal_sql.SEQUENCE_CACHE, [seal_sql.sql.quote_name(tables.log), tables.pk])
    row = cursor.fetchone()
    if row is not None and row[0] > 1:
        raise SealError(
            f"The id sequence of {tables.log} hands out {row[0]} ids at a time (CACHE {row[0]}): ids then do not "
            "follow the order they were drawn in, and a seal cannot tell which may still appear. "
            "ALTER SEQUENCE ... CACHE 1."
        )


# --- the admin's line ------------------------------------------------------------


def last_seal(using: str = DEFAULT_DB_ALIAS) -> Seal | None:
    """Return the newest seal of the log in database ``using``, or None if there is none."""
    return Seal.objects.using(using).defer("columns", "previous_hash", "hash").order_by("-id").first()
