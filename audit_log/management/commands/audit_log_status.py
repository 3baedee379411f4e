"""``manage.py audit_log_status``: are the audit triggers installed and current?"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DEFAULT_DB_ALIAS, connections, router

from ... import guard, partition_health, partitions, privileges, triggers
from ...conf import conf
from ...loading import get_log_entry_model


class Command(BaseCommand):
    help = (
        "List audited tables and whether their triggers are installed and current in the database. "
        "Exits with status 1 if any table has drifted."
    )
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--database", default=DEFAULT_DB_ALIAS, help="Database alias (default: %(default)s).")

    def handle(self, *args: Any, **options: Any) -> None:
        connection = connections[options["database"]]
        results = triggers.status(connection)
        log_model = get_log_entry_model()
        if router.allow_migrate_model(connection.alias, log_model):
            results.append(guard.status(connection, log_model))
        if not results:
            self.stdout.write("No audited tables.")
            return
        width = max(len(result.table) for result in results)
        for result in results:
            style = self.style.SUCCESS if result.ok else self.style.ERROR
            line = f"{result.table:<{width}}  {style(result.state):<10}  {result.model}"
            if result.detail:
                line += f"  ({result.detail})"
            self.stdout.write(line)
        # Not drift: development databases are often used as a superuser.
        self.stdout.write(f"Log privileges: {privileges.report_for(connection)}")
        if router.allow_migrate_model(connection.alias, log_model):
            self._partitions(connection, log_model._meta.db_table)
        drifted = [result for result in results if not result.ok]
        if drifted:
            raise CommandError(
                f"{len(drifted)} of {len(results)} audited tables have drifted. Run migrate, or "
                "`manage.py audit_log_install` to reinstall the triggers.",
                returncode=1,
            )

    def _partitions(self, connection: Any, table: str) -> None:
        """Say how the log is partitioned; warn (not drift) about the default partition or the setting."""
        problems = partition_health.problems(connection, table, conf.partitioning)
        for problem in problems:
            self.stdout.write(self.style.WARNING(f"Log partitions: {problem.id} {problem.message} {problem.hint}"))
        if not problems and partitions.is_partitioned(connection, table):
            count = len(partitions.list_partitions(connection, table))
            self.stdout.write(
                f"Log partitions: by {conf.partitioning}, {count} partitions, the default partition is empty"
            )
