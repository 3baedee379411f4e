"""Health of the partitioned log: the system check's and ``audit_log_status``'s findings, partitions after migrate."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper

from . import sql
from .partitions import (
    DEFAULT_AHEAD,
    create_partitions,
    default_partition_has_rows,
    default_partition_name,
    is_partitioned,
)


@dataclass(frozen=True)
class Problem:
    """Something wrong with the log's partitioning, for the system check and ``audit_log_status``.

    Attributes:
        id: The system check id (``audit_log.W005`` ...).
        message: What is wrong.
        hint: How to fix it.
    """

    id: str
    message: str
    hint: str


def problems(connection: BaseDatabaseWrapper, table: str, interval: str | None) -> list[Problem]:
    """Return what is wrong with the partitioning of the log ``table`` on ``connection``.

    Args:
        connection: The database connection.
        table: The log table, as Django spells it (a missing table has no problems: not migrated yet).
        interval: ``AUDIT_LOG_PARTITIONING``: None for an unpartitioned log.
    """
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [sql.quote_name(table)])
        [exists] = cursor.fetchone()
    if not exists:
        return []
    partitioned = is_partitioned(connection, table)
    if interval and not partitioned:
        return [
            Problem(
                "audit_log.W006",
                f"AUDIT_LOG_PARTITIONING is {interval!r} but the log table {table} is not partitioned.",
                "Convert it with `manage.py audit_log_partitions --convert` (copies in batches, then swaps the "
                "tables in a short lock), or remove the setting.",
            )
        ]
    if partitioned and not interval:
        return [
            Problem(
                "audit_log.W006",
                f"The log table {table} is partitioned but AUDIT_LOG_PARTITIONING is not set, so no "
                "partitions are created ahead and new entries will land in the default partition.",
                "Set AUDIT_LOG_PARTITIONING to the interval the table was made with (see "
                "`manage.py audit_log_partitions --list`).",
            )
        ]
    if partitioned and default_partition_has_rows(connection, table):
        default = default_partition_name(table)
        return [
            Problem(
                "audit_log.W005",
                f"The default partition {default} of the log holds entries: no partition covers their time.",
                "Run `manage.py audit_log_partitions`: it creates the partitions they belong in and moves them "
                "there. Run it from cron too, so partitions exist ahead of time.",
            )
        ]
    return []


def ensure_after_migrate(using: str, **kwargs: Any) -> None:
    """Create partitions ahead after ``migrate`` (a ``post_migrate`` receiver), when the log is partitioned.

    Does nothing without ``AUDIT_LOG_PARTITIONING``, where the log model is
    not migrated, or while the log table is missing or not partitioned (the
    system check says so).
    """
    from django.db import connections, router

    from .conf import conf
    from .loading import get_log_entry_model

    interval = conf.partitioning
    if not interval:
        return
    log_model = get_log_entry_model()
    if not router.allow_migrate_model(using, log_model):
        return
    connection = connections[using]
    table = log_model._meta.db_table
    if is_partitioned(connection, table):
        create_partitions(connection, table, interval, ahead=DEFAULT_AHEAD)
