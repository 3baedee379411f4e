"""Bounds on what a log page may cost: a statement timeout, a bounded search, date-hierarchy values in range.

* :func:`statement_timeout` gives the log queries of a page
  ``AUDIT_LOG_ADMIN_STATEMENT_TIMEOUT`` (PostgreSQL's ``statement_timeout``,
  set with ``SET LOCAL`` in the same query string as each query, so no
  statement or round trip is added) and turns a cancelled query into
  :class:`LogQueryTimeout`, which the pages show as a message.
* :func:`bound_search` keeps a search to ``search_max_words`` words and refuses
  one that would read more than ``search_max_entries`` entries: narrow the list
  first (a date range, a model ...), then search it.
* :func:`drop_invalid_dates` drops date-hierarchy parameters that name no
  date Python can handle (``?at__year=9999&at__month=12`` ends in year 10000).
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.contrib import messages
from django.db import DatabaseError, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.text import smart_split
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from audit_log.context import first_word

from .conf import conf
from .pagination import capped_count

if TYPE_CHECKING:
    from django.contrib.admin.views.main import ChangeList

#: PostgreSQL's SQLSTATE of a statement cancelled by ``statement_timeout`` (or a cancel request).
QUERY_CANCELED = "57014"

#: The savepoint each guarded query opens inside a transaction, to roll back to if it is cancelled.
SAVEPOINT = "audit_log_admin_timeout"

# libpq's PQtransactionStatus (the same numbers in psycopg2 and psycopg 3).
_IDLE = 0

_ACTIVE = "audit_log_admin_statement_timeout"


class LogQueryTimeout(Exception):  # noqa: N818  # named for what happened, like Django's TimeoutError users
    """A log query ran longer than ``AUDIT_LOG_ADMIN_STATEMENT_TIMEOUT`` and PostgreSQL cancelled it."""


def is_query_canceled(error: BaseException) -> bool:
    """Return True if ``error`` (Django's or the driver's) is PostgreSQL cancelling a statement."""
    for candidate in (error, error.__cause__):
        if candidate is None:
            continue
        code = getattr(candidate, "sqlstate", None) or getattr(candidate, "pgcode", None)  # psycopg 3 / psycopg2
        if code == QUERY_CANCELED:
            return True
    return False


class _TimeoutPrefix:
    """An execute wrapper that sends ``SET LOCAL statement_timeout`` in front of every ``SELECT``.

    In autocommit, PostgreSQL runs a query string of several statements as
    one implicit transaction: the setting holds for the ``SELECT`` behind it
    and is gone after it. Inside a transaction the string also opens a
    savepoint first, so a cancelled query can be rolled back to it and the
    transaction (and the rest of the page) carries on; the setting then lasts
    until the transaction ends, which only shortens the time its later
    statements may take. Nothing else is sent (psycopg 3's server-side
    binding, which takes one statement per query, is the exception: there
    the statements are sent on their own).
    """

    def __init__(self, connection: BaseDatabaseWrapper, milliseconds: int) -> None:
        self.connection = connection
        self.setting = f"SET LOCAL statement_timeout = {int(milliseconds)}"
        self.multiple_results = connection.Database.__name__ == "psycopg"  # type: ignore[attr-defined]  # every backend has one
        self.single_statement = bool(connection.settings_dict.get("OPTIONS", {}).get("server_side_binding"))

    def __call__(self, execute: Callable[..., Any], sql: Any, params: Any, many: bool, context: Any) -> Any:
        raw_cursor = context["cursor"].cursor
        if many or not isinstance(sql, str) or first_word(sql) != "SELECT" or getattr(raw_cursor, "name", None):
            # Writes, executemany() and server-side cursors (DECLARE takes one statement) go as they are.
            return execute(sql, params, many, context)
        in_transaction = not self.connection.get_autocommit() or self._transaction_status() != _IDLE
        prefix = [f"SAVEPOINT {SAVEPOINT}"] if in_transaction else []
        prefix.append(self.setting)
        if self.single_statement and not in_transaction:
            # One statement per query: the setting needs a transaction of its own around the query.
            with transaction.atomic(using=self.connection.alias):
                raw_cursor.execute(self.setting)
                return execute(sql, params, many, context)
        try:
            if self.single_statement:
                for statement in prefix:
                    raw_cursor.execute(statement)
                return execute(sql, params, many, context)
            result = execute("; ".join(prefix) + "; " + sql, params, many, context)
        except DatabaseError as error:
            if in_transaction and is_query_canceled(error):
                self._roll_back()
            raise
        if self.multiple_results:
            # psycopg 3 leaves a query string of several statements on its first
            # result; the caller reads the SELECT's.
            for _statement in prefix:
                raw_cursor.nextset()
        return result

    def _transaction_status(self) -> int:
        raw = self.connection.connection
        return int(raw.info.transaction_status) if raw is not None else _IDLE

    def _roll_back(self) -> None:
        """Undo the cancelled query (and its setting), so the transaction goes on."""
        try:
            with self.connection.cursor() as cursor:
                cursor.execute(f"ROLLBACK TO SAVEPOINT {SAVEPOINT}")
        except DatabaseError:
            pass  # the connection itself failed: the original error says more


@contextmanager
def statement_timeout(using: str) -> Iterator[None]:
    """Give every ``SELECT`` sent on ``using`` inside the block ``AUDIT_LOG_ADMIN_STATEMENT_TIMEOUT``.

    Blocks may nest (the outer one applies). Does nothing when the setting is
    off or the database is not PostgreSQL.

    Args:
        using: The database alias the log is read from.

    Raises:
        LogQueryTimeout: If PostgreSQL cancelled a query of the block.
    """
    milliseconds = conf.statement_timeout_ms
    connection = connections[using]
    if not milliseconds or connection.vendor != "postgresql" or getattr(connection, _ACTIVE, False):
        yield
        return
    setattr(connection, _ACTIVE, True)
    try:
        with connection.execute_wrapper(_TimeoutPrefix(connection, milliseconds)):
            yield
    except DatabaseError as error:
        if is_query_canceled(error):
            raise LogQueryTimeout(str(error)) from error
        raise
    finally:
        setattr(connection, _ACTIVE, False)


def report_timeout(request: HttpRequest) -> None:
    """Tell the user that the log took too long to answer, and how to narrow the list."""
    seconds = (conf.statement_timeout_ms or 0) / 1000
    messages.warning(
        request,
        _(
            "The audit log took longer than %(seconds)s seconds to answer, so the query was stopped and no "
            "entries are shown. Narrow the list: a date range, a model or object, a user, or fewer search words."
        )
        % {"seconds": f"{seconds:g}"},
        fail_silently=True,
    )


# --- search ---------------------------------------------------------------------


def search_words(term: str) -> list[str]:
    """Split a search term into words as the admin does (quoted phrases stay whole)."""
    return list(smart_split(term))


def bound_search(
    request: HttpRequest, queryset: QuerySet[Any], term: str, *, max_words: int, max_entries: int | None
) -> tuple[str, bool]:
    """Keep a search within bounds: its first ``max_words`` words, over at most ``max_entries`` entries.

    Each word is matched against every entry in reach (no index serves the
    search), so the cost grows with both. Extra words are dropped with a
    message. When the list the search would read (``queryset``: the log with
    the other filters applied) holds more than ``max_entries`` entries, the
    search is refused with a message asking for a narrower list; finding out
    costs one query that reads at most ``max_entries + 1`` entries.

    Args:
        request: The request (for the messages).
        queryset: The entries the search would read.
        term: The search term.
        max_words: Most words searched.
        max_entries: Most entries one search reads; None for no limit.

    Returns:
        The term to search (the words kept), and False if the search is
        refused (then nothing should match).
    """
    words = search_words(term)
    if not words:
        return term, True
    if len(words) > max_words:
        words = words[:max_words]
        term = " ".join(words)
        messages.warning(
            request,
            ngettext(
                "Only the first %(count)d word was searched for.",
                "Only the first %(count)d words were searched for.",
                max_words,
            )
            % {"count": max_words},
            fail_silently=True,
        )
    if max_entries is not None and capped_count(queryset, max_entries) > max_entries:
        messages.warning(
            request,
            _(
                "Not searched: the list holds more than %(count)s entries. Narrow it first (a date range, a "
                "model, a user ...), then search it."
            )
            % {"count": f"{max_entries:,}"},
            fail_silently=True,
        )
        return term, False
    return term, True


# --- the date hierarchy ----------------------------------------------------------


def _window(year: int, month: int | None, day: int | None) -> tuple[datetime.datetime, datetime.datetime]:
    """Return the period the date hierarchy filters on, as Django computes it; raise if out of range."""
    start = datetime.datetime(year, month or 1, day or 1)
    if day is not None:
        end = start + datetime.timedelta(days=1)
    elif month is not None:
        end = (start + datetime.timedelta(days=32)).replace(day=1)
    else:
        end = start.replace(year=year + 1)
    if settings.USE_TZ:
        timezone.make_aware(start)
        timezone.make_aware(end)
    return start, end


def _number(value: Any) -> int | None:
    if isinstance(value, list):
        value = value[-1] if value else None  # Django reads the last of repeated parameters
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return None


def invalid_date_hierarchy(field_name: str, params: dict[str, Any]) -> list[str]:
    """Return the date-hierarchy parameters among ``params`` that must be dropped, deepest last.

    Django turns ``<field>__year``, ``__month`` and ``__day`` into a period
    and fails on values that are no number, out of range, or whose period
    ends past year 9999 (``year=9999&month=12``): an error page, or a 500.
    This keeps the longest valid prefix of year, month and day, and drops
    the rest (a month without a year, a day without a month, too).

    Args:
        field_name: The ``date_hierarchy`` field.
        params: The query parameters (values or lists of values).

    Returns:
        The names of the parameters to drop.
    """
    names = [f"{field_name}__year", f"{field_name}__month", f"{field_name}__day"]
    present = [name in params for name in names]
    values = [_number(params[name]) if name in params else None for name in names]
    keep = 0
    while keep < 3 and present[keep] and values[keep] is not None:
        keep += 1
    while keep:
        year, month, day = (values[index] if index < keep else None for index in range(3))
        try:
            _window(year, month, day)  # type: ignore[arg-type]  # keep >= 1: a year
        except (ValueError, OverflowError, TypeError):
            keep -= 1
        else:
            break
    return [name for index, name in enumerate(names) if present[index] and index >= keep]


def describe_dropped(params: dict[str, Any], dropped: list[str]) -> str:
    """Return the message shown for dropped date-hierarchy parameters."""
    shown = []
    for name in dropped:
        value = params.get(name)
        value = value[-1] if isinstance(value, list) and value else value
        shown.append(f"{name}={value}")
    return _("Invalid date ignored: %(params)s.") % {"params": ", ".join(shown)}


def drop_invalid_dates(request: HttpRequest, changelist: ChangeList) -> None:
    """Drop the changelist's date-hierarchy parameters that are out of range, with an error message.

    The list is then shown as if they had not been given, as a bad filter
    value is: never Django's error page, nor a 500. Runs once per changelist.

    Args:
        request: The request (for the message).
        changelist: The changelist, before it filters (its ``params`` and
            ``filter_params`` lose the parameters).
    """
    if not changelist.date_hierarchy or getattr(changelist, "dates_checked", False):
        return
    changelist.dates_checked = True  # type: ignore[attr-defined]  # our own mark on Django's object
    dropped = invalid_date_hierarchy(changelist.date_hierarchy, changelist.filter_params)
    if not dropped:
        return
    messages.error(request, describe_dropped(changelist.filter_params, dropped), fail_silently=True)
    for name in dropped:
        changelist.params.pop(name, None)
        changelist.filter_params.pop(name, None)
