"""Paging through a large log without counting it.

* :class:`EstimatedCountPaginator` (the log changelist): counts exactly up to
  ``AUDIT_LOG_ADMIN_EXACT_COUNT_LIMIT`` entries and uses PostgreSQL's estimate
  beyond that, so a million-row log is never counted row by row.
* :func:`keyset_page` (an object's history): "newer" and "older" pages keyed by
  entry id, so every page is one index range scan however deep it is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.core.paginator import Paginator
from django.db import connections
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.functional import cached_property

from .conf import conf

#: Query-string parameters of :func:`keyset_page`.
BEFORE_VAR = "before"
AFTER_VAR = "after"


def capped_count(queryset: QuerySet[Any], limit: int) -> int:
    """Count ``queryset``'s rows, but stop at ``limit + 1``.

    Selects only primary keys under the LIMIT, so PostgreSQL reads at most
    ``limit + 1`` index entries or rows, and no annotation is computed.
    """
    return queryset.order_by().values("pk")[: limit + 1].count()


def table_estimate(queryset: QuerySet[Any]) -> int:
    """Return PostgreSQL's estimate of the number of rows in ``queryset``'s table.

    That is ``pg_class.reltuples``, which autovacuum and ANALYZE keep current;
    -1 if the table was never analyzed.
    """
    connection = connections[queryset.db]
    table = connection.ops.quote_name(queryset.model._meta.db_table)
    with connection.cursor() as cursor:
        # The quoted name is a bound parameter that regclass parses: nothing is pasted into the SQL.
        cursor.execute("SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass", [table])
        row = cursor.fetchone()
    return int(row[0]) if row else -1


class EstimatedCountPaginator(Paginator):
    """A ``Paginator`` that counts exactly only up to ``AUDIT_LOG_ADMIN_EXACT_COUNT_LIMIT``.

    Beyond the limit, an unfiltered list's ``count`` is the table's size as
    PostgreSQL estimates it (``count_is_estimate``: templates say "about"); a
    filtered list's is the limit + 1 (``count_is_lower_bound``: "more than"),
    since counting it exactly means reading every matching row. Its last page
    numbers are then approximate: a page past the real end is empty.

    (A filtered list's estimate would need ``EXPLAIN``, which the core treats
    as a possible write, so it would store the request's audit context first:
    a write on every page view.)
    """

    count_is_estimate = False
    count_is_lower_bound = False

    @cached_property
    def count(self) -> int:
        """Return the exact number of items up to the limit, else an estimate or the limit + 1."""
        if not isinstance(self.object_list, QuerySet):
            return super().count
        limit = conf.exact_count_limit
        exact = capped_count(self.object_list, limit)
        if exact <= limit:
            return exact
        if not self.object_list.query.where:
            estimate = table_estimate(self.object_list)
            if estimate > limit:
                self.count_is_estimate = True
                return estimate
        self.count_is_lower_bound = True
        return limit + 1


@dataclass(frozen=True)
class KeysetPage:
    """One page of a list ordered newest first, with links to its neighbours.

    Attributes:
        items: The page's items, newest first.
        newer_url: Query string of the next newer page, or "" on the newest.
        older_url: Query string of the next older page, or "" on the oldest.
        newest_url: Query string of the newest page, or "" on it.
        oldest_url: Query string of the oldest page, or "" on it.
    """

    items: Sequence[Any] = field(default_factory=list)
    newer_url: str = ""
    older_url: str = ""
    newest_url: str = ""
    oldest_url: str = ""

    @property
    def has_other_pages(self) -> bool:
        """True if there is a newer or an older page."""
        return bool(self.newer_url or self.older_url)


def _cursor(request: HttpRequest, name: str) -> int | None:
    try:
        value = int(request.GET.get(name, ""))
    except ValueError:
        return None
    return value if value >= 0 else None


def _query(request: HttpRequest, name: str | None = None, value: int | None = None) -> str:
    params = request.GET.copy()
    params.pop(BEFORE_VAR, None)
    params.pop(AFTER_VAR, None)
    if name is not None:
        params[name] = str(value)
    return "?" + params.urlencode() if params else "?"


def keyset_page(queryset: QuerySet[Any], request: HttpRequest, per_page: int) -> KeysetPage:
    """Return the page of ``queryset`` (newest first by ``id``) that the request's cursor names.

    ``?before=<id>`` is the page of entries older than ``id``, ``?after=<id>``
    the page of entries newer than ``id``, neither the newest page. Each page
    is one ``id``-range query of ``per_page + 1`` rows (the extra row tells if
    there is a further page); a page reached through a cursor makes one more
    ``EXISTS`` query for the other direction. Invalid cursors show the newest
    page.

    Args:
        queryset: The entries, any order (the page orders by ``id``).
        request: The request whose query string holds the cursor.
        per_page: Items per page.

    Returns:
        The page.
    """
    before, after = _cursor(request, BEFORE_VAR), _cursor(request, AFTER_VAR)
    if after is not None and before is None:
        rows = list(queryset.filter(id__gt=after).order_by("id")[: per_page + 1])
        has_newer = len(rows) > per_page
        items = rows[:per_page][::-1]
        has_older = bool(after) and queryset.filter(id__lte=after).exists()
    else:
        base = queryset if before is None else queryset.filter(id__lt=before)
        rows = list(base.order_by("-id")[: per_page + 1])
        has_older = len(rows) > per_page
        items = rows[:per_page]
        has_newer = before is not None and queryset.filter(id__gte=before).exists()
    newest_id, oldest_id = (items[0].id, items[-1].id) if items else (None, None)
    return KeysetPage(
        items=items,
        newer_url=_query(request, AFTER_VAR, newest_id) if has_newer and newest_id is not None else "",
        older_url=_query(request, BEFORE_VAR, oldest_id) if has_older and oldest_id is not None else "",
        newest_url=_query(request) if has_newer else "",
        oldest_url=_query(request, AFTER_VAR, 0) if has_older else "",
    )
