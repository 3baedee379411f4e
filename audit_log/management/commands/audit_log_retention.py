"""``manage.py audit_log_retention``: delete log entries older than a moment, through the log's guard."""

from __future__ import annotations

import datetime
import re
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections, transaction
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from ... import guard
from ...context import audit_context, write_context
from ...loading import get_log_entry_model

#: ``--keep`` units: days, weeks, months (30 days), years (365 days).
_KEEP = re.compile(r"^(\d+)([dwmy])$")
_DAYS = {"d": 1, "w": 7, "m": 30, "y": 365}


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
        "Delete audit log entries older than --before DATE, or than --keep DURATION allows, in batches, "
        "through the log's retention function (the only way past its append-only guard). Each batch is "
        "recorded in the log itself, with a context of type 'retention'. Run it as the log's owner."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--before", help="Delete entries written before this ISO date or date-time.")
        parser.add_argument("--keep", help="Keep this much instead: 90d, 12w, 24m (months of 30 days), 7y.")
        parser.add_argument("--batch", type=int, default=10_000, help="Entries per transaction (default 10000).")
        parser.add_argument("--dry-run", action="store_true", help="Only count what would be deleted.")
        parser.add_argument("--database", default=DEFAULT_DB_ALIAS, help="Database alias (default: %(default)s).")

    def handle(self, *args: Any, **options: Any) -> None:
        using = options["database"]
        if options["batch"] < 1:
            raise CommandError("--batch must be at least 1.")
        moment = cutoff(options["before"], options["keep"], timezone.now())
        log_model = get_log_entry_model()
        old = log_model._default_manager.using(using).filter(at__lt=moment)
        if options["dry_run"]:
            self.stdout.write(f"{old.count():,} entries written before {moment.isoformat()} would be deleted.")
            return
        connection = connections[using]
        function = guard.retention_reference(log_model._meta.db_table)
        details = {"before": moment.isoformat(), "batch": options["batch"]}
        deleted = 0
        with audit_context(guard.RETENTION, context=details, using=using):
            while True:
                try:
                    with transaction.atomic(using=using), connection.cursor() as cursor:
                        write_context(using)  # a SELECT carries no context by itself
                        cursor.execute(f"SELECT {function}(%s, %s)", [moment, options["batch"]])
                        [batch] = cursor.fetchone()
                except DatabaseError as error:
                    raise CommandError(
                        f"{error}\nRun audit_log_retention as the log's owner (the role migrations run as), "
                        "e.g. with --database naming a connection that uses it."
                    ) from error
                deleted += batch
                if batch:
                    self.stdout.write(f"Deleted {deleted:,} entries so far.")
                if batch < options["batch"]:
                    break
        self.stdout.write(f"Deleted {deleted:,} entries written before {moment.isoformat()}.")
