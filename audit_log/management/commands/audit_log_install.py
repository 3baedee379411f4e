"""``manage.py audit_log_install``: (re)install the audit triggers of every audited model."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import DEFAULT_DB_ALIAS, connections

from ... import triggers


class Command(BaseCommand):
    help = (
        "Install or refresh the audit triggers of every audited model; remove them from tables no model "
        "audits any more (and, with --prune, drop trigger functions nothing uses). Idempotent. Use it after "
        "upgrading django-postgres-audit-log or changing AUDIT_LOG_REQUIRE_CONTEXT, or with a backend whose "
        "migrations do not manage triggers."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--database", default=DEFAULT_DB_ALIAS, help="Database alias (default: %(default)s).")
        parser.add_argument(
            "--prune",
            action="store_true",
            help="Also drop orphaned trigger functions: ours, called by no trigger, needed by no model "
            "(left behind when a table was dropped outside migrations).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        connection = connections[options["database"]]
        with connection.schema_editor() as editor:
            for model in triggers.audited_models(connection):
                triggers.install(editor, model)
                self.stdout.write(f"Installed triggers on {model._meta.db_table} ({model._meta.label})")
            for result in triggers.status(connection):
                if result.state == "orphaned":
                    triggers.uninstall(editor, result.table)
                    self.stdout.write(f"Removed orphaned triggers from {result.table}")
                elif result.state == "orphaned function" and options["prune"]:
                    triggers.drop_function(editor, result.table)
                    self.stdout.write(f"Dropped orphaned function {result.table}")
