"""``manage.py audit_log_verify``: recompute the seal chain and report entries changed since sealing."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DEFAULT_DB_ALIAS

from ... import seal, seal_verify


class Command(BaseCommand):
    help = (
        "Verify the audit log's seals: check every link of the chain, recompute the seals not verified yet "
        "(all with --full) and report each entry changed, deleted or inserted after sealing, by id. Exits 1 if "
        "anything was found, 2 if verification cannot run (a missing or wrong AUDIT_LOG_SEAL_KEY)."
    )
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--database", default=DEFAULT_DB_ALIAS, help="Database alias (default: %(default)s).")
        parser.add_argument("--full", action="store_true", help="Recompute every seal, verified before or not.")
        parser.add_argument(
            "--from-seal", type=int, metavar="N", help="Recompute the seals from seal N on (and those never verified)."
        )
        parser.add_argument(
            "--anchor",
            metavar="HASH",
            help="A seal hash kept outside the database (audit_log_seal prints it): fail unless the chain has it.",
        )
        parser.add_argument("--no-record", action="store_true", help="Do not mark the seals found intact as verified.")

    def handle(self, *args: Any, **options: Any) -> None:
        anchor = None
        if options["anchor"]:
            try:
                anchor = bytes.fromhex(options["anchor"])
            except ValueError:
                raise CommandError("--anchor must be a seal hash in hexadecimal.", returncode=2) from None
        try:
            report = seal_verify.verify_log(
                options["database"],
                full=options["full"],
                from_seal=options["from_seal"],
                anchor=anchor,
                record=not options["no_record"],
            )
        except seal.SealError as error:
            raise CommandError(str(error), returncode=2) from error
        for notice in report.notices:
            self.stdout.write(notice.message)
        for problem in report.problems:
            self.stdout.write(self.style.ERROR(problem.message))
        checked = (
            f"recomputed {len(report.checked)} seals ({report.entries} entries)"
            if report.checked
            else "recomputed none"
        )
        summary = f"{report.seals} seals: every link checked, {checked}"
        if report.problems:
            raise CommandError(f"{summary}; {len(report.problems)} problems found.", returncode=1)
        if not report.seals:
            self.stdout.write("No seals yet: run audit_log_seal.")
            return
        self.stdout.write(self.style.SUCCESS(f"{summary}: no problems."))
