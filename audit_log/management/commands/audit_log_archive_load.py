"""``manage.py audit_log_archive_load FILE``: verify an archive and load its entries back into the log."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DEFAULT_DB_ALIAS, DatabaseError

from ... import archive, retention
from ...context import audit_context
from ...loading import get_log_entry_model


class Command(BaseCommand):
    help = (
        "Check an archive written by audit_log_retention --archive against its manifest (both SHA-256 hashes, "
        "row count, ids), then load its entries back with their ids: into the partition of its range on a "
        "partitioned log (created if missing), else into the log table. The load is recorded in the log with a "
        "context of type 'archive-load'. Run it as the log's owner."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="The archive's .csv.gz file or its .manifest.json.")
        parser.add_argument("--database", default=DEFAULT_DB_ALIAS, help="Database alias (default: %(default)s).")

    def handle(self, *args: Any, **options: Any) -> None:
        using = options["database"]
        details = {"archive": options["file"]}
        try:
            with audit_context(retention.ARCHIVE_LOAD, context=details, using=using):
                loaded, target, count = retention.load(using, get_log_entry_model(), options["file"])
        except archive.ArchiveError as error:
            raise CommandError(str(error)) from error
        except DatabaseError as error:
            raise CommandError(
                f"{error}\nRun audit_log_archive_load as the log's owner (the role migrations run as)."
            ) from error
        manifest = loaded.manifest
        span = f" ({manifest.range_start or 'start'} to {manifest.range_end})" if manifest.range_end else ""
        self.stdout.write(
            f"Verified {loaded.data} (SHA-256 {manifest.sha256}) and loaded {count:,} entries{span} into {target}."
        )
