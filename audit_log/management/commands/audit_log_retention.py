"""``manage.py audit_log_retention``: remove old log entries: drop partitions, or delete through the guard."""

from __future__ import annotations

import datetime
import re
import time
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections, transaction
from django.db.models import Model
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from ... import archive, guard, partitions, retention, sql
from ...context import audit_context, write_context
from ...loading import get_log_entry_model
from ...triggers import column_of

#: ``--keep`` units: days, weeks, months (30 days), years (365 days).
_KEEP = re.compile(r"^(\d+)([dwmy])$")
_DAYS = {"d": 1, "w": 7, "m": 30, "y": 365}
#: How far before now a cut-off must lie for --archive (see Command.handle).
ARCHIVE_MARGIN = datetime.timedelta(days=1)


def cutoff(before: str | None, keep: str | None, now: datetime.datetime) -> datetime.datetime:
    """Return the moment entries older than which are deleted.

    Args:
        before: An ISO date or date-time (a date means its midnight, in the
            current time zone).
        keep: How much to keep instead: ``90d``, ``12w``, ``24m`` (30-day
            months) or ``7y`` (365-day years).
        now: The present.

    Raises:
        CommandError: If neither or both are given, or one does not parse.
    """
    if (before is None) == (keep is None):
        raise CommandError("Give either --before DATE or --keep DURATION (e.g. --keep 24m).")
    if keep is not None:
        match = _KEEP.match(keep)
        if not match:
            raise CommandError(f"--keep takes a number and a unit d, w, m or y (e.g. 90d, 24m), not {keep!r}.")
        return now - datetime.timedelta(days=int(match.group(1)) * _DAYS[match.group(2)])
    assert before is not None
    moment = parse_datetime(before)
    if moment is None:
        day = parse_date(before)
        if day is None:
            raise CommandError(f"--before takes an ISO date or date-time, not {before!r}.")
        moment = datetime.datetime.combine(day, datetime.time())
    return timezone.make_aware(moment) if timezone.is_naive(moment) else moment


class Command(BaseCommand):
    help = (
        "Remove audit log entries older than --before DATE, or than --keep DURATION allows. On a partitioned log, "
        "every partition entirely older than the cut-off is archived (with --archive DIR), verified, detached and "
        "dropped; a partition straddling the cut-off is kept whole. On an unpartitioned log, entries are archived "
        "(with --archive) and then deleted in batches through the log's retention function (the only way past its "
        "append-only guard). Everything removed is recorded in the log itself, with a context of type 'retention'. "
        "Run it as the log's owner."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--before", help="Remove entries written before this ISO date or date-time.")
        parser.add_argument("--keep", help="Keep this much instead: 90d, 12w, 24m (months of 30 days), 7y.")
        parser.add_argument(
            "--archive",
            metavar="DIR",
            help="Write what is removed to gzip'd CSV archives with a manifest in DIR first (verified before removal).",
        )
        parser.add_argument(
            "--batch", type=int, default=10_000, help="Unpartitioned log: entries per transaction (default 10000)."
        )
        parser.add_argument("--dry-run", action="store_true", help="Only say what would be removed.")
        parser.add_argument("--database", default=DEFAULT_DB_ALIAS, help="Database alias (default: %(default)s).")

    def handle(self, *args: Any, **options: Any) -> None:
        using = options["database"]
        if options["batch"] < 1:
            raise CommandError("--batch must be at least 1.")
        moment = cutoff(options["before"], options["keep"], timezone.now())
        directory = Path(options["archive"]).resolve() if options["archive"] else None
        if directory is not None and moment > timezone.now() - ARCHIVE_MARGIN:
            # Deletion runs in batches after the archive is written; an open transaction could still
            # commit entries timed before a recent cut-off, which would be deleted without being archived.
            raise CommandError(
                f"--archive needs a cut-off at least {ARCHIVE_MARGIN.days} day before now (it is "
                f"{moment.isoformat()}): entries of transactions still open could be written before it after the "
                "archive is made. Use an older --before or a longer --keep."
            )
        log_model = get_log_entry_model()
        try:
            if partitions.is_partitioned(connections[using], log_model._meta.db_table):
                self.drop_partitions(using, log_model, moment, directory, options["batch"], dry_run=options["dry_run"])
            else:
                self.delete_entries(using, log_model, moment, directory, options["batch"], dry_run=options["dry_run"])
        except archive.ArchiveError as error:
            raise CommandError(str(error)) from error
        except DatabaseError as error:
            raise CommandError(
                f"{error}\nRun audit_log_retention as the log's owner (the role migrations run as), "
                "e.g. with --database naming a connection that uses it."
            ) from error

    def drop_partitions(
        self,
        using: str,
        log_model: type[Model],
        moment: datetime.datetime,
        directory: Path | None,
        batch_size: int,
        *,
        dry_run: bool,
    ) -> None:
        """Archive, detach and drop every partition entirely older than ``moment``; then the default's old rows."""
        connection = connections[using]
        table = log_model._meta.db_table
        old, straddling = retention.expired(connection, table, moment)
        for partition in straddling:
            self.stdout.write(
                f"Partition {partition.name} ({_range(partition)}) straddles the cut-off {moment.isoformat()}: "
                "kept whole."
            )
        if dry_run:
            for partition in old:
                with connection.cursor() as cursor:
                    cursor.execute(f"SELECT count(*) FROM {sql.quote_name(partition.qualified_name)}")
                    [count] = cursor.fetchone()
                target = f", archived to {directory / (partition.name + archive.DATA_SUFFIX)}" if directory else ""
                self.stdout.write(
                    f"Would drop partition {partition.name} ({_range(partition)}): {count:,} entries{target}."
                )
            self.stdout.write(f"{len(old)} partitions written before {moment.isoformat()} would be dropped.")
        else:
            details = {"before": moment.isoformat(), "archive": str(directory) if directory else None}
            total = 0
            with audit_context(guard.RETENTION, context=details, using=using):
                for partition in old:
                    dropped = retention.drop_partition(using, log_model, partition, directory)
                    total += dropped.entries
                    saved = (
                        f", archived to {dropped.archive.data} (SHA-256 {dropped.archive.manifest.sha256})"
                        if dropped.archive
                        else ""
                    )
                    self.stdout.write(
                        f"Dropped partition {partition.name} ({_range(partition)}): {dropped.entries:,} "
                        f"entries{saved}; detach and drop took {dropped.seconds:.3f} s."
                    )
            self.stdout.write(f"Dropped {len(old)} partitions ({total:,} entries) written before {moment.isoformat()}.")
        # Entries outside every partition's range wait in the default partition; the oldest of them
        # go the unpartitioned way, up to the first partition kept, so no kept partition loses rows.
        kept = [p.start for p in straddling if p.start is not None]
        until = min([moment, *kept])
        default = partitions.default_partition(connection, table)
        if default is None:
            return
        at = sql.quote_ident(column_of(log_model._meta.get_field("at")))
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT count(*) FROM {sql.quote_name(default.qualified_name)} WHERE {at} < %s", [until])
            [count] = cursor.fetchone()
        if count:
            target = (
                f" (after archiving them to {directory / _stem(table, until)}{archive.DATA_SUFFIX})"
                if directory
                else ""
            )
            self.stdout.write(
                f"The default partition {default.name} holds {count:,} entries written before {until.isoformat()}: "
                + (f"they would be deleted in batches{target}." if dry_run else "deleting them in batches.")
            )
            if not dry_run:
                self.delete_entries(using, log_model, until, directory, batch_size, dry_run=False)

    def delete_entries(
        self,
        using: str,
        log_model: type[Model],
        moment: datetime.datetime,
        directory: Path | None,
        batch_size: int,
        *,
        dry_run: bool,
    ) -> None:
        """Archive (with ``directory``) and delete the entries older than ``moment`` in batches."""
        table = log_model._meta.db_table
        stem = _stem(table, moment)
        old = log_model._default_manager.using(using).filter(at__lt=moment)
        if dry_run:
            target = f" (after archiving them to {Path(directory) / (stem + archive.DATA_SUFFIX)})" if directory else ""
            self.stdout.write(f"{old.count():,} entries written before {moment.isoformat()} would be deleted{target}.")
            return
        connection = connections[using]
        details: dict[str, Any] = {"before": moment.isoformat(), "batch": batch_size}
        written = None
        if directory is not None:
            written = archive.write(
                connection,
                directory,
                table=table,
                pk=column_of(log_model._meta.pk),
                stem=stem,
                range_end=moment,
                at=column_of(log_model._meta.get_field("at")),
            )
            details.update(archive=str(written.data), sha256=written.manifest.sha256, archived=written.manifest.rows)
            self.stdout.write(
                f"Archived {written.manifest.rows:,} entries to {written.data} (SHA-256 {written.manifest.sha256})."
            )
        function = guard.retention_reference(table)
        deleted = 0
        started = time.perf_counter()
        with audit_context(guard.RETENTION, context=details, using=using):
            while True:
                with transaction.atomic(using=using), connection.cursor() as cursor:
                    write_context(using)  # a SELECT carries no context by itself
                    cursor.execute(f"SELECT {function}(%s, %s)", [moment, batch_size])
                    [batch] = cursor.fetchone()
                deleted += batch
                if batch:
                    self.stdout.write(f"Deleted {deleted:,} entries so far.")
                if batch < batch_size:
                    break
        self.stdout.write(
            f"Deleted {deleted:,} entries written before {moment.isoformat()} in {time.perf_counter() - started:.3f} s."
        )
        if written is not None and deleted > written.manifest.rows:
            raise CommandError(
                f"{deleted - written.manifest.rows:,} of the deleted entries were written with a time before the "
                f"cut-off after {written.data} was made, so they are not in it."
            )


def _stem(table: str, moment: datetime.datetime) -> str:
    """Return the name of the archive of an unpartitioned log's entries older than ``moment``."""
    return f"{sql.bare_name(table)}_before_{moment.astimezone(datetime.UTC):%Y%m%dT%H%M%SZ}"


def _range(partition: partitions.Partition) -> str:
    start = partition.start.isoformat() if partition.start else "?"
    end = partition.end.isoformat() if partition.end else "?"
    return f"{start} to {end}"
