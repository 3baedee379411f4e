"""``manage.py audit_log_seal``: seal every entry written since the last seal into the hash chain."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DEFAULT_DB_ALIAS

from ... import seal


class Command(BaseCommand):
    help = (
        "Seal the audit log: digest every entry written since the previous seal and chain a new seal to it "
        "(HMAC-SHA256 with AUDIT_LOG_SEAL_KEY, else SHA-256). Never blocks writers. Run it as the log's "
        "owner (or a role that may write the seal tables), e.g. from cron, before audit_log_verify."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--database", default=DEFAULT_DB_ALIAS, help="Database alias (default: %(default)s).")
        parser.add_argument(
            "--wait",
            type=float,
            default=seal.DEFAULT_WAIT,
            help="Seconds to wait for transactions that are writing to the log when it starts; entries they may "
            "still commit are left to the next seal (default: %(default)s).",
        )
        parser.add_argument(
            "--chunk-size",
            type=int,
            default=seal.CHUNK_SIZE,
            help="Ids per block digest; a changed entry costs re-reading its block (default: %(default)s).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["chunk_size"] < 1:
            raise CommandError("--chunk-size must be at least 1.")
        try:
            result = seal.seal_log(options["database"], wait=options["wait"], chunk_size=options["chunk_size"])
        except seal.SealError as error:
            raise CommandError(str(error), returncode=2) from error
        if result is None:
            self.stdout.write("Nothing new to seal.")
            return
        if result.entry_count:
            what = f"{result.entry_count} entries (ids {result.first_id} to {result.last_id})"
        else:
            what = f"no new entries (re-anchored with {result.algorithm})"
        self.stdout.write(self.style.SUCCESS(f"Seal #{result.seal_id}: {what}, {result.algorithm} {result.hash.hex()}"))
        if result.unsequenced is not None:
            self.stdout.write(
                self.style.WARNING(
                    f"The log holds ids up to {result.unsequenced}, above the last its id sequence handed out: "
                    "entries inserted with an explicit id. They were not sealed."
                )
            )
        if result.held_back:
            self.stdout.write(
                "Entries after id "
                f"{result.last_id} were left for the next seal: transactions writing them were still in progress."
            )
