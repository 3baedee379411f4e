"""Verify the seal chain: recompute it and report every entry changed, deleted or inserted since sealing.

``manage.py audit_log_verify`` calls :func:`verify_log`. Every link of the
chain is checked each time, from the seal table alone; the hashes and entries
of the seals not verified yet (all of them with ``full``) are recomputed
inside PostgreSQL, which returns only the blocks whose digest differs; those
are compared entry by entry with the ids and short digests stored for them,
so each problem names its entries.
"""

from __future__ import annotations

import heapq
import hmac
import struct
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.utils import CursorWrapper

from . import seal_sql
from .conf import conf
from .guard import RETENTION
from .seal import (
    KEYED,
    PLAIN,
    ChunkSummary,
    SealError,
    SealRecord,
    Tables,
    check_tables,
    chunk_summary,
    key_fingerprint,
    log_columns,
    pinned_settings,
    read_seals,
    seal_hash,
    seal_message,
)


@dataclass(frozen=True)
class Problem:
    """Something verification found.

    Attributes:
        seal_id: The seal it concerns (None: the chain as a whole).
        kind: ``"changed"``, ``"deleted"``, ``"inserted"`` (entries, by id),
            ``"unlocalised"`` (a block changed, entries not told apart),
            ``"seal"`` (a seal does not match its hash), ``"chain"`` (a seal
            does not follow its predecessor), ``"unkeyed"`` (a seal without
            the key where one is required), ``"columns"`` (sealed columns
            missing from the log table) or ``"anchor"``.
        ids: The entry ids concerned, ascending.
        message: A sentence for humans.
    """

    seal_id: int | None
    kind: str
    message: str
    ids: tuple[int, ...] = ()


@dataclass
class VerifyReport:
    """What :func:`verify_log` checked and found.

    Attributes:
        seals: How many seals the chain has (all of their links were checked).
        checked: The seals whose hash and entries were recomputed.
        entries: How many entries those seals cover.
        problems: Everything found, in chain order.
        notices: Entries removed by recorded retention runs (kind
            ``"retained"``): expected, so not problems.
    """

    seals: int = 0
    checked: list[int] = field(default_factory=list)
    entries: int = 0
    problems: list[Problem] = field(default_factory=list)
    notices: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing was found."""
        return not self.problems


def verify_log(
    using: str = DEFAULT_DB_ALIAS,
    *,
    full: bool = False,
    from_seal: int | None = None,
    anchor: bytes | None = None,
    record: bool = True,
) -> VerifyReport:
    """Recompute the seal chain and report every difference.

    Every link is checked each time (each seal follows the previous one's hash
    and range). The hashes and entries of seals not verified before are
    recomputed (all seals with ``full``, those from ``from_seal`` on with it),
    and the seals found intact are marked verified (``record``).

    Args:
        using: The database alias of the log.
        full: Recompute every seal.
        from_seal: Recompute the seals from this id on (and those never verified).
        anchor: A seal hash kept outside the database: report a problem unless
            the chain still contains a seal with it.
        record: Mark the seals found intact as verified.

    Returns:
        The report.

    Raises:
        SealError: If the seal tables are missing, or seals were made with a
            key that ``AUDIT_LOG_SEAL_KEY`` does not hold.
    """
    connection = connections[using]
    tables = Tables.current()
    report = VerifyReport()
    with transaction.atomic(using=using), connection.cursor() as cursor, pinned_settings(cursor):
        check_tables(cursor, tables, using)
        records = read_seals(cursor, tables)
        report.seals = len(records)
        key = _key_for(records)
        report.problems += _chain_problems(records, key is not None, anchor)
        scope = [
            seal for seal in records if full or not seal.verified or (from_seal is not None and seal.id >= from_seal)
        ]
        report.checked = [seal.id for seal in scope]
        report.entries = sum(seal.entry_count for seal in scope)
        report.problems += _hash_problems(cursor, tables, scope, key)
        labels = {seal.id: seal.label for seal in scope}
        found, report.notices = _split_retained(cursor, tables, _entry_problems(cursor, tables, scope), labels)
        report.problems += found
    order = {seal.id: index for index, seal in enumerate(records)}
    report.problems.sort(key=lambda problem: order.get(problem.seal_id or 0, -1))
    if record:
        failed = {problem.seal_id for problem in report.problems}
        _mark_verified(connection, tables, [seal.id for seal in scope if seal.id not in failed and not seal.verified])
    return report


def _key_for(records: Sequence[SealRecord]) -> bytes | None:
    """Return the key to verify ``records`` with; raise if the configured one cannot."""
    key = conf.seal_key
    keyed = [seal for seal in records if seal.algorithm == KEYED]
    if keyed and key is None:
        raise SealError(
            f"Seals #{keyed[0].id} to #{keyed[-1].id} were made with AUDIT_LOG_SEAL_KEY (key id {keyed[0].key_id}): "
            "set it to verify them."
        )
    if key is not None:
        fingerprint = key_fingerprint(key)
        wrong = [seal for seal in keyed if seal.key_id != fingerprint]
        if wrong:
            raise SealError(
                f"AUDIT_LOG_SEAL_KEY (key id {fingerprint}) is not the key seal #{wrong[0].id} was made with "
                f"(key id {wrong[0].key_id})."
            )
    return key


def _chain_problems(records: Sequence[SealRecord], keyed: bool, anchor: bytes | None) -> list[Problem]:
    problems = []
    previous: SealRecord | None = None
    seen_keyed = False
    for seal in records:
        expected_hash = previous.hash if previous is not None else b""
        expected_after = previous.last_id if previous is not None else None
        if not hmac.compare_digest(seal.previous_hash, expected_hash) or seal.after_id != expected_after:
            follows = f"seal #{previous.id}" if previous is not None else "the start of the chain"
            problems.append(
                Problem(seal.id, "chain", f"{seal.label} does not follow {follows}: a seal was changed or removed.")
            )
        if seal.algorithm not in (PLAIN, KEYED):
            problems.append(Problem(seal.id, "seal", f"{seal.label} has an unknown algorithm {seal.algorithm!r}."))
        elif keyed and seal.algorithm == PLAIN and seen_keyed:
            problems.append(
                Problem(seal.id, "unkeyed", f"{seal.label} was made without the key, after seals made with it.")
            )
        seen_keyed = seen_keyed or seal.algorithm == KEYED
        previous = seal
    if keyed and previous is not None and previous.algorithm != KEYED:
        problems.append(
            Problem(
                previous.id,
                "unkeyed",
                f"The newest seal, {previous.label}, was made without AUDIT_LOG_SEAL_KEY, so anyone who can write "
                "the seal table could have made it: run audit_log_seal, which adds a keyed seal covering it.",
            )
        )
    if anchor is not None and not any(hmac.compare_digest(seal.hash, anchor) for seal in records):
        problems.append(Problem(None, "anchor", f"No seal has the hash {anchor.hex()}: the chain was rewritten."))
    return problems


def _hash_problems(
    cursor: CursorWrapper, tables: Tables, scope: Sequence[SealRecord], key: bytes | None
) -> list[Problem]:
    chunks: dict[int, list[ChunkSummary]] = {seal.id: [] for seal in scope}
    for batch in _batches([seal.id for seal in scope], 1000):
        cursor.execute(seal_sql.chunk_summaries(tables.chunk), [batch])
        for row in cursor.fetchall():
            chunks[row[0]].append(chunk_summary(row[1:]))
    problems = []
    for seal in scope:
        if seal.algorithm not in (PLAIN, KEYED):
            continue
        expected = seal_hash(seal_message(seal, chunks[seal.id]), key if seal.algorithm == KEYED else None)
        if not hmac.compare_digest(expected, seal.hash):
            problems.append(
                Problem(seal.id, "seal", f"{seal.label} does not match its hash: its row or its chunks were changed.")
            )
    return problems


def _batches(items: Sequence[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def _entry_problems(cursor: CursorWrapper, tables: Tables, scope: Sequence[SealRecord]) -> list[Problem]:
    current = log_columns(cursor, tables)
    problems = []
    groups: dict[tuple[int, tuple[str, ...]], list[SealRecord]] = {}
    for seal in scope:
        missing = [column for column in seal.columns if column not in current]
        if missing:
            problems.append(
                Problem(
                    seal.id,
                    "columns",
                    f"{seal.label}: sealed columns {', '.join(missing)} are gone from the log table, so none of its "
                    "entries can be verified.",
                )
            )
            continue
        extra = tuple(column for column in current if column not in seal.columns)
        groups.setdefault((seal.chunk_size, extra), []).append(seal)
    for (chunk_size, extra), seals in groups.items():
        by_id = {seal.id: seal for seal in seals}
        for batch in _entry_batches(seals):
            cursor.execute(
                seal_sql.mismatched_blocks(tables.log, tables.pk, tables.seal, tables.chunk),
                {"seals": batch, "chunk": chunk_size, "extra": list(extra)},
            )
            found: dict[int, dict[str, list[int]]] = {}
            for seal_id, block in cursor.fetchall():
                kinds = found.setdefault(seal_id, {})
                for kind, ids in _localise(cursor, tables, by_id[seal_id], block, extra).items():
                    kinds.setdefault(kind, []).extend(ids)
            for seal_id, kinds in found.items():
                problems += [
                    Problem(seal_id, kind, _message(by_id[seal_id].label, kind, ids), tuple(sorted(ids)))
                    for kind, ids in kinds.items()
                ]
    return problems


def _split_retained(
    cursor: CursorWrapper, tables: Tables, problems: list[Problem], labels: dict[int, str]
) -> tuple[list[Problem], list[Problem]]:
    """Tell deletions made by recorded retention runs (notices) from the others (problems)."""
    if not any(problem.kind == "deleted" for problem in problems):
        return problems, []
    cursor.execute(seal_sql.retention_records(tables.log, tables.pk, dict(tables.fields)), [tables.log, RETENTION])
    batches = cursor.fetchall()
    deleted = sorted(entry_id for problem in problems if problem.kind == "deleted" for entry_id in problem.ids)
    covering = _account(deleted, batches)
    kept, notices = [], []
    for problem in problems:
        if problem.kind != "deleted":
            kept.append(problem)
            continue
        retained = {entry_id: covering[entry_id] for entry_id in problem.ids if entry_id in covering}
        label = labels[problem.seal_id or 0]
        rest = tuple(entry_id for entry_id in problem.ids if entry_id not in retained)
        if rest:
            kept.append(Problem(problem.seal_id, "deleted", _message(label, "deleted", rest), rest))
        if retained:
            ids = tuple(sorted(retained))
            records = format_ids(set(retained.values()))
            message = f"{_message(label, 'retained', ids)} (recorded in entries {records})"
            notices.append(Problem(problem.seal_id, "retained", message, ids))
    return kept, notices


def _account(deleted: Sequence[int], records: Sequence[tuple[int, int, int, int]]) -> dict[int, int]:
    """Match deleted entry ids to the retention records that removed them; return ``{entry id: record}``.

    A record covers the ids from its first to its last, and excuses at most as
    many as it says it removed: more missing ids in its range means someone
    deleted others there too. Ranges may overlap (ids are not ordered by time
    across partitions), so each id, in ascending order, goes to the covering
    record with room that ends first, which matches as many ids as any
    assignment can. An id left over stays a problem, and so do all the ids
    taken by the records covering it, since which of them was removed by
    someone else cannot be told.

    Args:
        deleted: Entry ids found deleted, ascending.
        records: ``(record id, first id, last id, entries removed)`` rows.
    """
    pending = sorted(records, key=lambda row: row[1])
    room = {record: entries for record, _, _, entries in records}
    active: list[tuple[int, int]] = []  # (last id, record), the nearest end first
    matched = {}
    position = 0
    for entry_id in deleted:
        while position < len(pending) and pending[position][1] <= entry_id:
            record, _, last, _ = pending[position]
            heapq.heappush(active, (last, record))
            position += 1
        while active and (active[0][0] < entry_id or room[active[0][1]] <= 0):
            heapq.heappop(active)
        if active:
            record = active[0][1]
            room[record] -= 1
            matched[entry_id] = record
    # An id no record has room for could be any of those its covering records took:
    # none of them is excused, so the problem lists them all.
    tainted = {
        record
        for entry_id in deleted
        if entry_id not in matched
        for record, first, last, _ in records
        if first <= entry_id <= last
    }
    return {entry_id: record for entry_id, record in matched.items() if record not in tainted}


_KIND_TEXT = {
    "changed": "entries changed after sealing",
    "deleted": "entries deleted after sealing",
    "inserted": "entries inserted after sealing",
    "unlocalised": "entries changed after sealing, among",
    "retained": "entries removed by retention",
}


def _message(label: str, kind: str, ids: Iterable[int]) -> str:
    return f"{label}: {_KIND_TEXT[kind]}: {format_ids(ids)}"


def _entry_batches(seals: Sequence[SealRecord], entries: int = 2_000_000) -> Iterator[list[int]]:
    """Group seals so that one statement recomputes about ``entries`` entries."""
    batch: list[int] = []
    count = 0
    for seal in seals:
        if batch and count + seal.entry_count > entries:
            yield batch
            batch, count = [], 0
        batch.append(seal.id)
        count += seal.entry_count
    if batch:
        yield batch


def block_range(block: int, chunk_size: int) -> tuple[int, int]:
    """Return the lowest and highest id of a block (``id / chunk_size``, truncated toward zero, as in SQL)."""
    if block > 0:
        return block * chunk_size, block * chunk_size + chunk_size - 1
    if block < 0:
        return block * chunk_size - chunk_size + 1, block * chunk_size
    return -(chunk_size - 1), chunk_size - 1


def _listing(ids: bytes, digests: bytes) -> dict[int, bytes]:
    count = len(ids) // 8
    return {struct.unpack_from(">q", ids, 8 * index)[0]: digests[8 * index : 8 * index + 8] for index in range(count)}


def _localise(
    cursor: CursorWrapper, tables: Tables, seal: SealRecord, block: int, extra: Sequence[str]
) -> dict[str, list[int]]:
    """Tell which entries of a mismatched block were changed, deleted or inserted."""
    low, high = block_range(block, seal.chunk_size)
    low = max(low, (seal.after_id if seal.after_id is not None else seal_sql.MIN_ID) + 1)
    high = min(high, seal.last_id)
    cursor.execute(
        seal_sql.block_entries(tables.log, tables.pk),
        {"low": low, "high": high, "chunk": seal.chunk_size, "block": block, "extra": list(extra)},
    )
    ids, digests = cursor.fetchone()
    actual = _listing(bytes(ids), bytes(digests))
    cursor.execute(seal_sql.stored_block(tables.chunk), [seal.id, low, high])
    row = cursor.fetchone()
    stored = _listing(bytes(row[0]), bytes(row[1])) if row is not None else {}
    found = {
        "changed": sorted(i for i in actual.keys() & stored.keys() if actual[i] != stored[i]),
        "deleted": sorted(stored.keys() - actual.keys()),
        "inserted": sorted(actual.keys() - stored.keys()),
    }
    found = {kind: ids for kind, ids in found.items() if ids}
    if not found:
        # Same ids and short digests but another block digest: a change that
        # the 8-byte digests do not tell apart, or a stored list rewritten.
        found = {"unlocalised": sorted(actual) or [low, high]}
    return found


def _mark_verified(connection: BaseDatabaseWrapper, tables: Tables, seal_ids: list[int]) -> None:
    if not seal_ids:
        return
    with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
        cursor.execute(seal_sql.mark_verified(tables.seal), [seal_ids])


def format_ids(ids: Iterable[int], limit: int = 200) -> str:
    """Return ids as compact ranges, ``"3, 7-9, 12"``, at most ``limit`` ranges (then how many more)."""
    ranges: list[list[int]] = []
    for value in sorted(ids):
        if ranges and value == ranges[-1][1] + 1:
            ranges[-1][1] = value
        else:
            ranges.append([value, value])
    shown = [f"{low}" if low == high else f"{low}-{high}" for low, high in ranges[:limit]]
    if len(ranges) > limit:
        rest = sum(high - low + 1 for low, high in ranges[limit:])
        shown.append(f"and {rest} more")
    return ", ".join(shown)
