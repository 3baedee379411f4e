"""The temporary context table: who and where, for the triggers to copy into every entry.

A context belongs to a database connection, not to a thread-local: each
Django connection keeps a stack of active contexts. Entering a context costs
no query. The first statement that may write while it is active first writes
the context row into the connection's TEMPORARY table (creating the table if
this session has none yet) in one round trip; leaving the outermost context
empties the table in ``finally``. So a request that writes nothing adds no
statement, and one that writes adds two round trips, however many rows it
changes.

Nesting: the innermost context applies. Leaving it makes the outer one apply
again; the outer row is rewritten lazily, before the next write.

Transactions: the context row is written in whatever transaction is open. If
that transaction (or savepoint) is rolled back, the row is gone too; this is
noticed through Django's own on-commit bookkeeping and the row is written
again before the next write.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import ContextDecorator, ExitStack, contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from asgiref.sync import sync_to_async
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper

from . import sql
from .conf import conf
from .loading import get_context_model
from .models import user_label
from .serialization import jsonable
from .triggers import column_of

if TYPE_CHECKING:
    from .models import BaseContext

# Statements that cannot change an audited table, by their first word.
# Everything else (and any statement that is not plain text) makes the pending
# context row be written first: being wrong in that direction costs one round
# trip, never a record.
_READ_ONLY = frozenset(
    {
        "SELECT",
        "SHOW",
        "SAVEPOINT",
        "RELEASE",
        "ROLLBACK",
        "BEGIN",
        "START",
        "COMMIT",
        "END",
        "SET",
        "RESET",
        "FETCH",
        "CLOSE",
        "LISTEN",
        "UNLISTEN",
        "VALUES",
        "TABLE",
    }
)
_FIRST_WORD = re.compile(r"[\s(]*([A-Za-z]+)")  # "(SELECT ...) UNION (SELECT ...)" starts with "("
# EXPLAIN only runs the statement it explains with ANALYZE.
_ANALYZE = re.compile(r"\bANALY[SZ]E\b", re.IGNORECASE)

_ATTRIBUTE = "audit_log_contexts"


def first_word(statement: Any) -> str:
    """Return the first SQL keyword of ``statement`` in capitals ("" if it is not plain text)."""
    if not isinstance(statement, str):
        return ""
    match = _FIRST_WORD.match(statement)
    return match.group(1).upper() if match else ""


def may_write(statement: Any, word: str | None = None) -> bool:
    """Return True unless ``statement`` is plainly read-only SQL text.

    Args:
        statement: The SQL.
        word: Its :func:`first_word`, if the caller has it already.
    """
    word = first_word(statement) if word is None else word
    if word == "EXPLAIN":
        return bool(_ANALYZE.search(statement))
    return word not in _READ_ONLY


class LazyContext:
    """A context instance built on first use and shared by every database it applies to."""

    def __init__(self, factory: Callable[[], BaseContext]) -> None:
        self._factory = factory
        self._instance: BaseContext | None = None

    def get(self) -> BaseContext:
        """Build the context instance (once) and return it."""
        if self._instance is None:
            self._instance = self._factory()
        return self._instance


class _Marker:
    """An on-commit callback that only remembers that it ran.

    While the transaction that wrote the context row is open, the marker sits
    in ``connection.run_on_commit``; Django drops it there when that
    transaction or savepoint rolls back, and calls it on commit.
    """

    committed = False

    def __call__(self) -> None:
        self.committed = True


@dataclass
class _Witness:
    """Proof that the context row of ``frame`` was written, and where."""

    frame: Frame
    raw: Any  # the DB-API connection it was written on
    marker: _Marker | None  # None: written outside any transaction (committed at once)
    uncertain: bool = False  # manual transaction management: validity unknowable


@dataclass(eq=False)
class Frame:
    """One active context on one connection (compared by identity)."""

    context: LazyContext


class ContextStack:
    """The active contexts of one database connection and the state of its context table."""

    def __init__(self, connection: BaseDatabaseWrapper) -> None:
        self.connection = connection
        self.frames: list[Frame] = []
        self._witness: _Witness | None = None
        self._busy = False

    # --- public -----------------------------------------------------------

    def push(self, context: LazyContext) -> Frame:
        """Make ``context`` the current one on this connection (no query)."""
        frame = Frame(context)
        if not self.frames:
            self.connection.execute_wrappers.append(self._execute)
        self.frames.append(frame)
        return frame

    def pop(self, frame: Frame) -> None:
        """Leave ``frame``; when it is the outermost, empty the context table.

        Raises:
            RuntimeError: If ``frame`` is not the innermost active context.
        """
        if not self.frames or self.frames[-1] is not frame:
            raise RuntimeError("Audit contexts must be exited in the reverse order they were entered.")
        try:
            if len(self.frames) == 1:
                self._clear()
        finally:
            self.frames.pop()
            if not self.frames:
                self.connection.execute_wrappers.remove(self._execute)

    def write(self) -> None:
        """Write the current context row now, if it is not in the table already."""
        if self.frames and not self._busy and not self._holds(self.frames[-1]):
            self._flush()

    # --- the execute wrapper ------------------------------------------------

    def _execute(self, execute: Callable[..., Any], statement: Any, params: Any, many: bool, context: Any) -> Any:
        if self._busy:
            return execute(statement, params, many, context)
        word = first_word(statement)  # every statement pays for this: look once
        if word == "DISCARD":
            self._witness = None  # DISCARD TEMP/ALL drops the context table
            return execute(statement, params, many, context)
        if not may_write(statement, word) or self._holds(self.frames[-1]):
            return execute(statement, params, many, context)
        if conf.transaction_pooling and not self.connection.in_atomic_block:
            # Behind a transaction-pooling proxy, consecutive transactions may
            # run on different server sessions: the context row and the change
            # must share one transaction.
            with transaction.atomic(using=self.connection.alias):
                self._flush()
                return execute(statement, params, many, context)
        self._flush()
        return execute(statement, params, many, context)

    # --- the context table ----------------------------------------------------

    def _status(self) -> str:
        """Where the last written row stands: "absent", "pending", "committed" or "uncertain"."""
        witness = self._witness
        if witness is None or witness.raw is None or witness.raw is not self.connection.connection:
            return "absent"  # never written, or the connection was reopened since
        if witness.uncertain:
            return "uncertain"
        if witness.marker is None:
            return "committed"
        if any(entry[1] is witness.marker for entry in self.connection.run_on_commit):
            return "pending"
        if witness.marker.committed and not conf.transaction_pooling:
            return "committed"
        return "absent"  # rolled back, or (pooling) deleted at commit

    def _holds(self, frame: Frame) -> bool:
        return self._witness is not None and self._witness.frame is frame and self._status() in {"pending", "committed"}

    def _flush(self) -> None:
        frame = self.frames[-1]
        connection = self.connection
        self._busy = True  # building the context may query (request.user); let that through
        try:
            instance = frame.context.get()
            model = type(instance)
            fields = model._meta.concrete_fields
            columns = [(column_of(f), f.db_type(connection) or "") for f in fields]
            params = [f.get_db_prep_save(getattr(instance, f.attname), connection) for f in fields]
            table = model._meta.db_table
            create = sql.create_context_table(table, columns)
            if conf.transaction_pooling:
                # Rows must never outlive the transaction: the server session is shared.
                create += " ON COMMIT DELETE ROWS"
            # IF NOT EXISTS: created once per session; later flushes only look it up.
            statements = [
                sql.escape_percent(create),
                sql.escape_percent(sql.clear_context(table)),
                sql.fill_context(table, [column for column, _ in columns]),
            ]
            with connection.cursor() as cursor:
                if _can_batch(connection):
                    cursor.execute("; ".join(statements), params)
                else:
                    cursor.execute(statements[0].replace("%%", "%"))
                    cursor.execute(statements[1].replace("%%", "%"))
                    cursor.execute(statements[2], params)
        finally:
            self._busy = False
        marker = None
        uncertain = False
        if connection.in_atomic_block:
            marker = _Marker()
            transaction.on_commit(marker, using=connection.alias)
        elif not connection.get_autocommit():
            uncertain = True
        self._witness = _Witness(frame=frame, raw=connection.connection, marker=marker, uncertain=uncertain)

    def _clear(self) -> None:
        status = self._status()
        self._witness = None
        if status == "absent":
            return
        table = get_context_model()._meta.db_table
        self._busy = True
        try:
            with self.connection.cursor() as cursor:
                cursor.execute(sql.clear_context(table))
        except DatabaseError:
            # The row was written in the transaction that just failed, so its
            # rollback removes the row; or the session is gone, and its
            # temporary table with it. Anything else must not pass silently.
            if status != "pending" and self.connection.is_usable():
                raise
        finally:
            self._busy = False


def _can_batch(connection: BaseDatabaseWrapper) -> bool:
    """Whether several statements with parameters can share one ``execute()``.

    They can with psycopg2 and with psycopg 3's client-side binding (Django's
    default); not with psycopg 3's server-side binding.
    """
    return not connection.settings_dict.get("OPTIONS", {}).get("server_side_binding")


def stack_for(connection: BaseDatabaseWrapper) -> ContextStack:
    """Return the context stack of ``connection``, creating it on first use."""
    stack: ContextStack | None = getattr(connection, _ATTRIBUTE, None)
    if stack is None:
        stack = ContextStack(connection)
        setattr(connection, _ATTRIBUTE, stack)
    return stack


def postgresql_aliases() -> list[str]:
    """Return the aliases of every configured PostgreSQL database."""
    return [alias for alias in connections if connections[alias].vendor == "postgresql"]


@contextmanager
def activate(factory: Callable[[], BaseContext], using: Sequence[str] | None = None) -> Iterator[LazyContext]:
    """Make a lazily built context current on several databases at once.

    The middleware and the command base class use this; ``audit_context`` is
    the friendlier interface.

    Args:
        factory: Builds the context instance; called at most once, at the
            first write on any of the databases.
        using: Database aliases; default: every PostgreSQL database.

    Yields:
        The shared lazy context.
    """
    lazy = LazyContext(factory)
    with ExitStack() as exits:
        for alias in postgresql_aliases() if using is None else using:
            stack = stack_for(connections[alias])
            frame = stack.push(lazy)
            exits.callback(stack.pop, frame)
        yield lazy


def write_context(using: str = DEFAULT_DB_ALIAS) -> None:
    """Write the current context row now, instead of before the next write.

    Statements starting with ``SELECT`` are taken to be read-only. Call this
    before ``SELECT some_function()`` when that function changes audited
    tables, so its changes get the context too.
    """
    stack_for(connections[using]).write()


def current_context(using: str = DEFAULT_DB_ALIAS) -> BaseContext | None:
    """Return the context that applies to writes on ``using`` now, or None."""
    stack = stack_for(connections[using])
    return stack.frames[-1].context.get() if stack.frames else None


class audit_context(ContextDecorator):  # noqa: N801  # used like contextlib's lower-case managers
    """Record who and why for every change made inside the block.

    Use it as a context manager or decorator wherever no request or command
    provides context: Celery tasks, scripts, cron jobs, tests::

        with audit_context("celery-task", performed_by=user, context={"task": "sync"}):
            Invoice.objects.filter(...).update(status="paid")

    Entering costs no query: the context is written before the first write.

    Args:
        context_type: Free text naming the kind of context.
        performed_by: The user responsible, or None.
        context: A JSON-serialisable dict (other values are converted to text).
        using: The database alias the context applies to.
        **fields: Values of custom fields of your context model.
    """

    def __init__(
        self,
        context_type: str,
        performed_by: Any = None,
        context: dict[str, Any] | None = None,
        *,
        using: str = DEFAULT_DB_ALIAS,
        **fields: Any,
    ) -> None:
        self.context_type = context_type
        self.performed_by = performed_by
        self.context = context
        self.using = using
        self.fields = fields
        self._frames: list[Frame] = []

    def _recreate_cm(self) -> audit_context:
        # Each decorated call gets its own instance (threads, recursion).
        return audit_context(self.context_type, self.performed_by, self.context, using=self.using, **self.fields)

    def build(self) -> BaseContext:
        """Build the context instance this block records."""
        model = get_context_model()
        return model(
            context_type=self.context_type,
            performed_by=self.performed_by,
            performed_by_label=user_label(self.performed_by),
            context=jsonable(self.context or {}),
            **self.fields,
        )

    def __enter__(self) -> BaseContext:
        instance = self.build()  # built eagerly: a bad field name fails here, not at the first write
        lazy = LazyContext(lambda: instance)
        self._frames.append(stack_for(connections[self.using]).push(lazy))
        return instance

    def __exit__(self, *exc_info: object) -> None:
        stack_for(connections[self.using]).pop(self._frames[-1])  # raises if left out of order
        self._frames.pop()

    async def __aenter__(self) -> BaseContext:
        # The connection belongs to the thread that runs sync ORM code.
        return await sync_to_async(self.__enter__)()

    async def __aexit__(self, *exc_info: object) -> None:
        await sync_to_async(self.__exit__)(*exc_info)
