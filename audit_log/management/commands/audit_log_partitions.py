"""``manage.py audit_log_partitions``: create the log's partitions ahead, list them, or convert the log."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DEFAULT_DB_ALIAS, connections

from ... import partition_convert, partitions
from ...conf import conf
from ...loading import get_log_entry_model


class Command(BaseCommand):
    help = (
        "Create the partitions of the partitioned audit log ahead of time (run it from cron; migrate runs it "
        "too) and list them; or, with --convert, turn an existing unpartitioned log into a partitioned one."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--database", default=DEFAULT_DB_ALIAS, help="Database alias (default: %(default)s).")
        parser.add_argument(
            "--ahead",
            type=int,
            default=partitions.DEFAULT_AHEAD,
            help="Partitions to have beyond the current one (default: %(default)s).",
        )
        parser.add_argument("--list", action="store_true", help="Only list the partitions (exact row counts).")
        parser.add_argument(
            "--convert",
            action="store_true",
            help="Convert an unpartitioned log: copy it into a new partitioned table in batches, then swap the "
            "two in one short transaction. The old table is kept, renamed, for you to drop.",
        )
        parser.add_argument(
            "--batch",
            type=int,
            default=partition_convert.DEFAULT_BATCH,
            help="Entries copied per transaction by --convert (default: %(default)s).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        connection = connections[options["database"]]
        table = get_log_entry_model()._meta.db_table
        interval = conf.partitioning
        if options["ahead"] < 0 or options["batch"] < 1:
            raise CommandError("--ahead must be 0 or more and --batch 1 or more.")
        if options["list"]:
            self._list(connection, table)
            return
        if not interval:
            raise CommandError("AUDIT_LOG_PARTITIONING is not set: set it to 'month', 'week' or 'day' first.")
        if options["convert"]:
            if partitions.is_partitioned(connection, table):
                raise CommandError(f"The log table {table} is already partitioned.")
            result = partition_convert.convert(
                connection, get_log_entry_model(), interval, batch=options["batch"], progress=self._progress
            )
            self.stdout.write(
                self.style.SUCCESS(f"Converted {table}: {result.copied} entries copied into a partitioned table.")
            )
            self.stdout.write(
                f"The old table is kept as {result.old_table}. Check the log, then drop it: "
                f"DROP TABLE {partitions.sql.quote_name(result.old_table)};"
            )
        elif not partitions.is_partitioned(connection, table):
            raise CommandError(
                f"The log table {table} is not partitioned. Convert it with manage.py audit_log_partitions --convert."
            )
        created = partitions.create_partitions(connection, table, interval, ahead=options["ahead"])
        for name in created:
            self.stdout.write(f"Created {name}")
        if not created:
            self.stdout.write(f"Partitions are ready {options['ahead']} {interval}(s) ahead; none created.")
        if options["verbosity"] > 1:
            self._list(connection, table)

    def _progress(self, message: str) -> None:
        self.stdout.write(message)

    def _list(self, connection: Any, table: str) -> None:
        if not partitions.is_partitioned(connection, table):
            raise CommandError(f"The log table {table} is not partitioned.")
        found = partitions.list_partitions(connection, table, exact_counts=True)
        width = max(len(partition.name) for partition in found) if found else 0
        for partition in found:
            if partition.is_default:
                span = "DEFAULT (outside every range)"
            else:
                assert partition.start is not None  # a ranged partition
                assert partition.end is not None
                span = f"{partition.start:%Y-%m-%d %H:%M} .. {partition.end:%Y-%m-%d %H:%M} UTC"
            line = f"{partition.name:<{width}}  {span:<40}  {partition.rows:>12} rows  {_size(partition.bytes)}"
            if partition.is_default and partition.rows:
                line = self.style.WARNING(line + "  <- run audit_log_partitions to move these into partitions")
            self.stdout.write(line)


def _size(count: int) -> str:
    """Return a byte count for people: ``8.0 kB``, ``1.2 GB``."""
    size = float(count)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1024:
            return f"{size:.1f} {unit}" if unit != "B" else f"{int(size)} B"
        size /= 1024
    return f"{size:.1f} TB"
