"""``manage.py audit_log_grants``: leave the application's role nothing but SELECT on the log."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections, transaction

from ... import privileges


class Command(BaseCommand):
    help = (
        "Print (or with --apply, run) the statements that make the audit log append-only for the role the "
        "application connects with: SELECT on the log and nothing else; the triggers write it as their "
        "owner. Idempotent. Run it as the log's owner (the role migrations run as) or a superuser."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--app-role", required=True, help="The role the application connects with.")
        parser.add_argument(
            "--owner", help="Also make this role the owner of the log and of the audit functions (optional)."
        )
        parser.add_argument("--apply", action="store_true", help="Run the statements instead of printing them.")
        parser.add_argument("--database", default=DEFAULT_DB_ALIAS, help="Database alias (default: %(default)s).")

    def handle(self, *args: Any, **options: Any) -> None:
        connection = connections[options["database"]]
        plan = privileges.grant_statements(connection, options["app_role"], options["owner"])
        for warning in plan.warnings:
            self.stderr.write(self.style.WARNING(f"-- {warning}"))
        if not options["apply"]:
            for statement in plan.statements:
                self.stdout.write(statement + ";")
            return
        try:
            with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
                for statement in plan.statements:
                    cursor.execute(statement)
        except DatabaseError as error:
            raise CommandError(f"{error}\nRun this command as the log's owner or a superuser.") from error
        self.stdout.write(f"Applied {len(plan.statements)} statements.")
        self.stdout.write(privileges.report_for(connection, options["app_role"]))
