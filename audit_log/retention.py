"""Retention of a partitioned log (detach and drop whole partitions) and loading archives back.

``manage.py audit_log_retention`` and ``manage.py audit_log_archive_load``
are thin over these functions. Both record what they did in the log itself,
as one entry per partition dropped or archive loaded, with the context of the
run (type ``"retention"`` or ``"archive-load"``): a partition drop is DDL, so
no trigger sees it, and a load inserts entries the log's triggers do not
record either.

The entry recording a drop looks like the guard's record of a DELETE
(``changes``: ``entries``, ``first_id``, ``last_id``, ``first_at``,
``last_at``) plus the ``partition`` and its ``range_start`` / ``range_end``,
the ``archive`` file and its ``sha256``. Seal verification
(``seal_sql.retention_records``) accepts the entries it removed as retention,
not tampering, while the whole range is gone.
"""

from __future__ import annotations

import datetime
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.db import DatabaseError, IntegrityError, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Model
from django.db.models.expressions import RawSQL
from django.db.models.functions import Now

from . import archive, partitions, sql
from .context import current_context
from .triggers import column_of

#: The context type of ``audit_log_archive_load`` (and of the entry recording each load).
ARCHIVE_LOAD = "archive-load"


@dataclass(frozen=True)
class Dropped:
    """One partition retention dropped."""

    partition: partitions.Partition
    entries: int
    archive: archive.Archive | None
    seconds: float


def record(using: str, log_model: type[Model], action: str, changes: dict[str, Any]) -> Model:
    """Write one entry into the log recording a change to the log itself, with the current context.

    Args:
        using: The database alias.
        log_model: The log-entry model.
        action: ``"DELETE"`` (entries removed) or ``"INSERT"`` (entries loaded).
        changes: What changed; ``first_id`` (if any) becomes the entry's object id, as in the guard's record.

    Raises:
        RuntimeError: If no context is active (the callers run inside ``audit_context``).
    """
    context = current_context(using)
    if context is None:
        raise RuntimeError("record() needs an active audit_context.")
    entry = log_model(
        content_type=ContentType.objects.db_manager(using).get_for_model(log_model),
        object_id=str(changes.get("first_id") or changes.get("partition") or ""),
        table_name=log_model._meta.db_table,
        action=action,
        at=Now(),
        changes=changes,
        transaction_id=RawSQL("txid_current()", []),
    )
    for field in context._meta.concrete_fields:
        setattr(entry, field.attname, getattr(context, field.attname))
    entry.save(using=using, force_insert=True)
    return entry


def _stats(cursor: Any, table: str, pk: str, at: str) -> tuple[int, int | None, int | None, Any, Any]:
    key, moment = sql.quote_ident(pk), sql.quote_ident(at)
    cursor.execute(
        f"SELECT count(*), min({key}), max({key}), min({moment}), max({moment}) FROM {sql.quote_name(table)}"
    )
    count, first, last, first_at, last_at = cursor.fetchone()
    return int(count), first, last, first_at, last_at


def _iso(moment: datetime.datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def expired(connection: BaseDatabaseWrapper, table: str, cutoff: datetime.datetime) -> tuple[list[Any], list[Any]]:
    """Return the partitions of ``table`` entirely older than ``cutoff``, and those straddling it.

    The default partition is never among them.
    """
    found = [p for p in partitions.list_partitions(connection, table) if not p.is_default]
    old = [p for p in found if p.end is not None and p.end <= cutoff]
    straddling = [p for p in found if p.start is not None and p.end is not None and p.start < cutoff < p.end]
    return old, straddling


def drop_partition(
    using: str, log_model: type[Model], partition: partitions.Partition, directory: Path | None
) -> Dropped:
    """Archive (with ``directory``) and verify one partition, then record, detach and drop it in one transaction.

    Inside the transaction the partition is locked against writes and
    counted again; the count and ids must match the archive's, so no entry
    written after archiving is dropped unarchived.

    Raises:
        archive.ArchiveError: If the archive cannot be written or verified,
            or the partition changed since.
    """
    connection = connections[using]
    table, pk, at = log_model._meta.db_table, column_of(log_model._meta.pk), column_of(log_model._meta.get_field("at"))
    written = None
    if directory is not None:
        written = archive.write(
            connection,
            directory,
            table=table,
            pk=pk,
            stem=partition.name,
            source=partition.qualified_name,
            range_start=partition.start,
            range_end=partition.end,
            at=at,
        )
    name = sql.quote_name(partition.qualified_name)
    with transaction.atomic(using=using), connection.cursor() as cursor:
        cursor.execute(f"LOCK TABLE {name} IN SHARE MODE")
        count, first, last, first_at, last_at = _stats(cursor, partition.qualified_name, pk, at)
        if written is not None and (count, first, last) != (
            written.manifest.rows,
            written.manifest.min_id,
            written.manifest.max_id,
        ):
            raise archive.ArchiveError(
                f"{partition.name} changed after it was archived ({count} entries now, "
                f"{written.manifest.rows} archived): it is kept. Remove {written.data} and its manifest (they "
                "lack the new entries) and run retention again."
            )
        record(
            using,
            log_model,
            "DELETE",
            {
                "entries": count,
                "first_id": first,
                "last_id": last,
                "first_at": _iso(first_at),
                "last_at": _iso(last_at),
                "partition": partition.name,
                "range_start": _iso(partition.start),
                "range_end": _iso(partition.end),
                "archive": str(written.data) if written else None,
                "sha256": written.manifest.sha256 if written else None,
            },
        )
        started = time.perf_counter()
        cursor.execute(f"ALTER TABLE {sql.quote_name(table)} DETACH PARTITION {name}")
        cursor.execute(f"DROP TABLE {name}")
        seconds = time.perf_counter() - started
    return Dropped(partition, count, written, seconds)


def _bound(moment: str) -> str:
    # The manifest's ISO text carries its offset: the same instant in any session time zone.
    return sql.quote_literal(moment) + "::timestamptz"


def _target_partition(connection: BaseDatabaseWrapper, table: str, manifest: archive.Manifest) -> tuple[str, bool]:
    """Return the partition to load a partition's archive into, and whether it is a new table to attach after."""
    assert manifest.range_start is not None
    assert manifest.range_end is not None
    start = datetime.datetime.fromisoformat(manifest.range_start)
    end = datetime.datetime.fromisoformat(manifest.range_end)
    found = [p for p in partitions.list_partitions(connection, table) if not p.is_default]
    same = next((p for p in found if p.start == start and p.end == end), None)
    if same is not None:
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT EXISTS (SELECT FROM {sql.quote_name(same.qualified_name)})")
            if cursor.fetchone()[0]:
                raise archive.ArchiveError(
                    f"Partition {same.name} ({manifest.range_start} to {manifest.range_end}) holds entries already: "
                    "the archive is not loaded over them. Drop that partition with audit_log_retention first if "
                    "it is meant to be replaced."
                )
        return same.qualified_name, False
    overlapping = [
        p.name for p in found if p.start is not None and p.end is not None and p.start < end and start < p.end
    ]
    if overlapping:
        raise archive.ArchiveError(
            f"The archive's range {manifest.range_start} to {manifest.range_end} overlaps partition(s) "
            f"{', '.join(overlapping)} with other bounds: it cannot be loaded as a partition of its own."
        )
    schema = sql.function_schema(table)
    name = str(manifest.partition)
    qualified = sql.qualified(schema, name) if schema else name
    with connection.cursor() as cursor:
        # A table of its own, attached once full: its indexes are then built in one pass each,
        # several times faster than keeping them up to date row by row during the COPY.
        cursor.execute(
            f"CREATE TABLE {sql.quote_name(qualified)} (LIKE {sql.quote_name(table)} "
            "INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE INCLUDING COMPRESSION)"
        )
    return qualified, True


def _attach(connection: BaseDatabaseWrapper, table: str, partition: str, manifest: archive.Manifest) -> None:
    """Attach a loaded table as the partition of the archive's range (building its indexes), with the guard."""
    assert manifest.range_start is not None
    assert manifest.range_end is not None
    with connection.cursor() as cursor:
        cursor.execute(
            f"ALTER TABLE {sql.quote_name(table)} ATTACH PARTITION {sql.quote_name(partition)} "
            f"FOR VALUES FROM ({_bound(manifest.range_start)}) TO ({_bound(manifest.range_end)})"
        )
        cursor.execute(partitions.guard_statement(partition))


def load(using: str, log_model: type[Model], path: str | Path) -> tuple[archive.Archive, str, int]:
    """Verify an archive and load it back into the log, recording the load; one transaction.

    On a partitioned log a partition's archive goes into the partition of
    its range, created if missing (refused if it holds entries); any other
    archive is loaded through the log table. Rows keep their ids.

    Args:
        using: The database alias.
        log_model: The log-entry model.
        path: The archive's ``.csv.gz`` file or its manifest.

    Returns:
        The archive, the table or partition loaded into, and the number of entries.

    Raises:
        archive.ArchiveError: If the archive does not verify, belongs to
            another table, or its entries (or their ids) are in the log already.
    """
    connection = connections[using]
    table, pk = log_model._meta.db_table, column_of(log_model._meta.pk)
    loaded = archive.verify(path, pk)
    manifest = loaded.manifest
    if sql.bare_name(manifest.table) != sql.bare_name(table):
        raise archive.ArchiveError(f"{loaded.data} holds entries of {manifest.table}, not of the log table {table}.")
    partitioned = partitions.is_partitioned(connection, table)
    with transaction.atomic(using=using), connection.cursor() as cursor:
        target, created = table, False
        if partitioned and manifest.partition and manifest.range_start and manifest.range_end:
            target, created = _target_partition(connection, table, manifest)
        try:
            with transaction.atomic(using=using):
                count = archive.load_into(connection, loaded, target)
                if created:
                    _attach(connection, table, target, manifest)
        except IntegrityError as error:
            raise archive.ArchiveError(
                f"Entries of {loaded.data} are in the log already ({error}): nothing was loaded."
            ) from error
        except DatabaseError as error:
            raise archive.ArchiveError(f"{loaded.data} cannot be loaded into {target}: {error}") from error
        if count != manifest.rows:
            raise archive.ArchiveError(
                f"{count} entries loaded, the manifest says {manifest.rows}: nothing was loaded."
            )
        if partitioned and manifest.min_id is not None:
            # A partitioned log's key is (id, at): ids are unique by the sequence only, so check.
            key = sql.quote_ident(pk)
            cursor.execute(
                f"SELECT count(*) - count(DISTINCT {key}) FROM {sql.quote_name(table)} WHERE {key} BETWEEN %s AND %s",
                [manifest.min_id, manifest.max_id],
            )
            [duplicates] = cursor.fetchone()
            if duplicates:
                raise archive.ArchiveError(
                    f"{duplicates} entries of {loaded.data} have ids that are in the log already: nothing was loaded."
                )
        record(
            using,
            log_model,
            "INSERT",
            {
                "entries": count,
                "first_id": manifest.min_id,
                "last_id": manifest.max_id,
                "partition": manifest.partition,
                "range_start": manifest.range_start,
                "range_end": manifest.range_end,
                "archive": str(loaded.data),
                "sha256": manifest.sha256,
            },
        )
    return loaded, target, count
