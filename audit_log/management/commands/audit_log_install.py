"""``manage.py audit_log_install``: (re)install the audit triggers of every audited model."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import DEFAULT_DB_ALIAS, connections, router

from ... import guard, triggers
from ...fields import AuditLogsField
from ...loading import get_log_entry_model


class Command(BaseCommand):
    help = (
        "Install or refresh the audit triggers of every audited model (by an AuditLogsField or an "
        "AddAuditLogging operation) and the log's append-only guard; with --prune, also remove triggers "
        "from tables nothing audits any more and trigger functions nothing uses. Idempotent. Use it after "
        "upgrading django-postgres-audit-log or changing AUDIT_LOG_REQUIRE_CONTEXT, or with a backend whose "
        "migrations do not manage triggers."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--database", default=DEFAULT_DB_ALIAS, help="Database alias (default: %(default)s).")
        parser.add_argument(
            "--prune",
            action="store_true",
            help="Also remove orphaned triggers (on tables no model audits) and orphaned trigger functions "
            "(called by no trigger, needed by no model). Without it they are only reported.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        connection = connections[options["database"]]
        log_model = get_log_entry_model()
        with connection.schema_editor() as editor:
            by_field = triggers.audited_models(connection)
            for model in by_field:
                triggers.install(editor, model)
                self.stdout.write(f"Installed triggers on {model._meta.db_table} ({model._meta.label})")
            for model in triggers.operation_audited_models(connection, by_field):
                triggers.install(editor, model, audit=AuditLogsField(), by_operation=True)
                self.stdout.write(
                    f"Installed triggers on {model._meta.db_table} ({model._meta.label}, audited by AddAuditLogging)"
                )
            if router.allow_migrate_model(connection.alias, log_model):
                guard.install(editor, log_model)
                self.stdout.write(f"Installed the append-only guard on {log_model._meta.db_table}")
            for result in triggers.status(connection):
                if result.state not in {"orphaned", "orphaned function"}:
                    continue
                what = "triggers on" if result.state == "orphaned" else "function"
                if not options["prune"]:
                    # Never stop auditing a table unasked: it may be audited in a way we do not know.
                    self.stdout.write(f"Left orphaned {what} {result.table} alone ({result.detail}); --prune removes")
                elif result.state == "orphaned":
                    triggers.uninstall(editor, result.table)
                    self.stdout.write(f"Removed orphaned triggers from {result.table}")
                else:
                    triggers.drop_function(editor, result.table)
                    self.stdout.write(f"Dropped orphaned function {result.table}")
