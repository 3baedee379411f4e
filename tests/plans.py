"""Reading query plans in tests: an index's name as EXPLAIN may show it, on a plain or a partitioned log."""

from __future__ import annotations

import re

from django.db import connection


def index_names(index: str) -> list[str]:
    """Return ``index`` and the names of its copies on the partitions of its table (none if not partitioned).

    On a partitioned table (the suite's ``AUDIT_LOG_PARTITIONING=month`` leg)
    an index is created on the parent and PostgreSQL gives each partition its
    own copy under a derived name; plans name the copies, not the parent index.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_inherits AS i JOIN pg_class AS c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = to_regclass(%s) ORDER BY c.relname",
            [connection.ops.quote_name(index)],
        )
        return [index, *(row[0] for row in cursor.fetchall())]


def index_pattern(index: str) -> str:
    """Return a regular expression matching ``index`` or any of its partitions' copies."""
    return "(?:" + "|".join(re.escape(name) for name in index_names(index)) + ")"
