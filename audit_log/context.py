"""The context channel: who and where, handed to the triggers with every write.

Each Django connection keeps a stack of active contexts. While one is active,
an execute wrapper puts ``SET LOCAL audit_log.context = '<json>'`` in front of
every statement that can fire an audit trigger, in the same query string. So
the context reaches the trigger in the same round trip and the same
transaction as the write, and PostgreSQL forgets it when that transaction
ends, or when a savepoint it was set in rolls back. No state outlives the
transaction that needs it: there is nothing to clear after a request and
nothing to guess about whether a transaction committed, a raw ``BEGIN`` /
``ROLLBACK`` / ``DISCARD ALL`` cannot leave a stale context behind, and it works
unchanged behind PgBouncer's transaction pooling.

What it costs: entering and leaving a context send nothing; a statement that
only reads is sent unchanged; a write carries the context's JSON (built once
per context) with it. A statement more is sent only

* when a context that wrote is left while its transaction stays open (inside
  ``atomic()``): ``SET LOCAL audit_log.context = ''``, so later statements of
  that transaction cannot see a context no active block set. Rolling back to
  a savepoint would restore what was in force when the savepoint began, so
  while a context may come back that way, every ``ROLLBACK TO SAVEPOINT``
  sent through Django's cursor gets the same clear appended, in the same
  round trip;
* for ``executemany()`` and with psycopg 3's server-side binding, which cannot
  send two statements in one query string: the context is set by a statement
  of its own, in a transaction opened for the pair when none is open.

Which statements carry the context (:func:`carries_context`): those whose
first keyword (after comments and parentheses) is INSERT, UPDATE, DELETE,
MERGE, TRUNCATE, COPY, WITH, EXECUTE, or EXPLAIN ANALYZE. Not ``SELECT`` (a
``SELECT writer_function()`` is taken to be a read), nor ``CALL`` and ``DO``
(a procedure may commit, which it cannot do inside the implicit transaction a
two-statement query string makes): before those, call :func:`write_context`
inside ``transaction.atomic()``. Without it their changes are still logged,
as ``"unknown"``.

Nesting: the innermost context applies; leaving it makes the outer one apply
again, from the next write on.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from contextlib import ContextDecorator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from asgiref.sync import sync_to_async
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.transaction import TransactionManagementError

from . import sql
from .loading import get_context_model
from .models import user_label
from .payload import build_payload
from .serialization import jsonable

if TYPE_CHECKING:
    from .models import BaseContext

#: First keywords of statements that can fire an audit trigger.
_WRITES = frozenset({"INSERT", "UPDATE", "DELETE", "MERGE", "TRUNCATE", "COPY", "WITH", "EXECUTE"})
# Whitespace, comments ("--" to the end of the line, "/* */") and opening
# parentheses before the first keyword.
_FIRST_WORD = re.compile(r"(?:\s|--[^\n]*(?:\n|\Z)|/\*.*?\*/|\()*([A-Za-z]+)", re.DOTALL)
# EXPLAIN only runs the statement it explains with ANALYZE.
_ANALYZE = re.compile(r"\bANALY[SZ]E\b", re.IGNORECASE)
# ROLLBACK [WORK | TRANSACTION] TO [SAVEPOINT] name, after _FIRST_WORD's "ROLLBACK".
_TO_SAVEPOINT = re.compile(r"\s+(?:(?:WORK|TRANSACTION)\s+)?TO\b", re.IGNORECASE)

# libpq's PQtransactionStatus, the same numbers in psycopg2 and psycopg 3: read
# from the driver, no round trip.
_IDLE, _INTRANS, _UNKNOWN = 0, 2, 4

_ATTRIBUTE = "audit_log_contexts"


def first_word(statement: str) -> str:
    """Return the first SQL keyword of ``statement`` in capitals, skipping comments ("" if none)."""
    match = _FIRST_WORD.match(statement)
    return match.group(1).upper() if match else ""


def carries_context(statement: str) -> bool:
    """Return True if ``statement`` can fire an audit trigger, so the context must travel with it.

    Args:
        statement: SQL text.
    """
    word = first_word(statement)
    if word == "EXPLAIN":
        return bool(_ANALYZE.search(statement))
    return word in _WRITES


def _rolls_back_to_savepoint(statement: str) -> bool:
    match = _FIRST_WORD.match(statement)
    return bool(match and match.group(1).upper() == "ROLLBACK" and _TO_SAVEPOINT.match(statement, match.end()))


class LazyContext:
    """A context built on first use, shared by every database it applies to.

    The instance and its payload are built once, so every database sees the
    same context (the same ``context_id``).

    Args:
        factory: Builds the (unsaved) context instance.
        strict: Refuse bad values with ``ValueError`` rather than mend them
            (see ``audit_log.payload``).
    """

    def __init__(self, factory: Callable[[], BaseContext], *, strict: bool = False) -> None:
        self._factory = factory
        self._strict = strict
        self._instance: BaseContext | None = None
        self._statement: str | None = None
        self._building = False

    def get(self) -> BaseContext:
        """Build the context instance (once) and return it."""
        if self._instance is None:
            self._instance = self._factory()
        return self._instance

    def statement(self) -> str:
        """Return the ``SET LOCAL`` statement that hands this context to the triggers (built once).

        Raises:
            RuntimeError: If building the context itself writes to a database
                while this context is active.
            ValueError: In strict mode, for values the payload refuses.
        """
        if self._statement is None:
            if self._building:
                raise RuntimeError("Building the audit context wrote to the database; build it without writing.")
            self._building = True
            try:
                self._statement = sql.set_context(build_payload(self.get(), strict=self._strict))
            finally:
                self._building = False
        return self._statement


@dataclass(eq=False)
class Frame:
    """One active context on one connection (compared by identity)."""

    context: LazyContext


@dataclass(frozen=True)
class _Prefixes:
    """The prefix of one context, with and without ``%`` doubled for parameter interpolation."""

    plain: str
    escaped: str


class ContextStack:
    """The active contexts of one database connection, and the wrapper that hands them to the triggers.

    Invariant: between statements, ``audit_log.context`` holds either nothing
    or the context of a block that is still active. Writes carry their
    block's context. Leaving a block inside an open transaction clears what it
    set. And since rolling back to a savepoint restores whatever was in force
    when the savepoint began (undoing a clear), every ``ROLLBACK TO SAVEPOINT``
    sent through Django's cursor is followed, in the same query string, by a
    clear; the wrapper stays installed for that until the transaction ends.
    """

    def __init__(self, connection: BaseDatabaseWrapper) -> None:
        self.connection = connection
        self.frames: list[Frame] = []
        # The context our last SET LOCAL made visible (None: none, or cleared).
        self._in_force: LazyContext | None = None
        # A context was set in the open transaction, on this DB-API connection:
        # a savepoint rollback may bring it back until the transaction ends.
        self._dirty: Any = None
        self._installed = False
        self._busy = False
        self._prefixes: tuple[LazyContext, _Prefixes] | None = None
        self._driver: Any = connection.Database  # type: ignore[attr-defined]  # every backend has one; the stubs omit it
        self._multiple_results = self._driver.__name__ == "psycopg"
        # psycopg 3's server-side binding sends one statement per query.
        self._single_statement_only = bool(connection.settings_dict.get("OPTIONS", {}).get("server_side_binding"))

    # --- public -----------------------------------------------------------

    def push(self, context: LazyContext) -> Frame:
        """Make ``context`` the current one on this connection (no query)."""
        frame = Frame(context)
        self.frames.append(frame)
        if not self._installed:
            self.connection.execute_wrappers.append(self._execute)
            self._installed = True
        return frame

    def pop(self, frame: Frame) -> None:
        """Leave ``frame``; hide its context from the rest of a transaction that is still open.

        Raises:
            RuntimeError: If ``frame`` is not the innermost active context.
        """
        if not self.frames or self.frames[-1] is not frame:
            raise RuntimeError("Audit contexts must be exited in the reverse order they were entered.")
        try:
            if self._still_dirty() and self._in_force is not None and self._transaction_status() == _INTRANS:
                # (In a failed transaction nothing can run; what ends it, a
                # ROLLBACK or a ROLLBACK TO SAVEPOINT, takes care of it.)
                self._run(sql.clear_context())
                self._in_force = None
        finally:
            self.frames.pop()
            self._uninstall_if_unneeded()

    def write(self) -> None:
        """Hand the current context to the triggers for the rest of the open transaction.

        Raises:
            RuntimeError: If no context is active on this connection.
            TransactionManagementError: If no transaction is open.
        """
        if not self.frames:
            raise RuntimeError("write_context() needs an active audit context on this database.")
        self.connection.ensure_connection()
        if self._transaction_status() != _INTRANS:
            raise TransactionManagementError(
                "write_context() sets the context for the current transaction only, and none is open: "
                "call it inside transaction.atomic(), before the statement it is for."
            )
        self._run(self._statement())
        self._set(self.frames[-1].context)

    # --- the execute wrapper ------------------------------------------------

    def _execute(self, execute: Callable[..., Any], statement: Any, params: Any, many: bool, context: Any) -> Any:
        if self._busy:
            return execute(statement, params, many, context)
        if not self.frames and not self._still_dirty():
            self._uninstall_if_unneeded()
            return execute(statement, params, many, context)
        text = _text_of(statement, self.connection)
        if text is None:
            # Not text we can rewrite (bytes): classify a decoded copy, and
            # give a write its context through a statement of its own.
            probe = _probe(statement)
            if self.frames and carries_context(probe):
                return self._execute_separately(execute, statement, params, many, context)
            result = execute(statement, params, many, context)
            if _rolls_back_to_savepoint(probe):
                self._clear_after_rollback()
            return result
        if self.frames and carries_context(text):
            if many or self._single_statement_only:
                return self._execute_separately(execute, statement, params, many, context)
            prefixes = self._current_prefixes()
            self._set(self.frames[-1].context)
            result = execute((prefixes.plain if params is None else prefixes.escaped) + text, params, many, context)
            if self._multiple_results:
                # psycopg 3 leaves a multi-statement result on its first result
                # set; the caller wants the write's (RETURNING rows, rowcount).
                context["cursor"].cursor.nextset()
            return result
        if self._dirty is not None and _rolls_back_to_savepoint(text):
            if many or self._single_statement_only:
                result = execute(statement, params, many, context)
                self._clear_after_rollback()
                return result
            # The rollback restores what was in force when the savepoint
            # began: clear it in the same round trip. (Nothing to reposition
            # for psycopg 3: neither statement returns rows.)
            suffix = "; " + sql.clear_context()
            result = execute(text + (suffix if params is None else sql.escape_percent(suffix)), params, many, context)
            self._in_force = None
            return result
        return execute(statement, params, many, context)

    def _execute_separately(
        self, execute: Callable[..., Any], statement: Any, params: Any, many: bool, context: Any
    ) -> Any:
        """Set the context by a statement of its own, in the same transaction as the write."""
        statement_to_set = self._statement()
        lazy = self.frames[-1].context
        if self.connection.get_autocommit() and self._transaction_status() == _IDLE:
            with transaction.atomic(using=self.connection.alias):
                self._run(statement_to_set)
                self._set(lazy)
                return execute(statement, params, many, context)
        self._run(statement_to_set)
        self._set(lazy)
        return execute(statement, params, many, context)

    # --- state ------------------------------------------------------------------

    def _set(self, lazy: LazyContext) -> None:
        self._in_force = lazy
        self._dirty = self.connection.connection

    def _still_dirty(self) -> bool:
        """Whether a context set earlier may still be (or come back) in force; forget it once it cannot."""
        if self._dirty is None:
            return False
        if self._dirty is not self.connection.connection or self._transaction_status() == _IDLE:
            # The transaction that set it has ended (or the connection was
            # replaced): PostgreSQL has forgotten it.
            self._dirty = None
            self._in_force = None
            return False
        return True

    def _clear_after_rollback(self) -> None:
        if self._transaction_status() == _INTRANS:
            self._run(sql.clear_context())
        self._in_force = None

    def _uninstall_if_unneeded(self) -> None:
        if self._installed and not self.frames and not self._still_dirty():
            self.connection.execute_wrappers.remove(self._execute)
            self._installed = False

    # --- helpers --------------------------------------------------------------

    def _statement(self) -> str:
        lazy = self.frames[-1].context
        self._busy = True  # building the context may query (request.user): let that through
        try:
            return lazy.statement()
        finally:
            self._busy = False

    def _current_prefixes(self) -> _Prefixes:
        lazy = self.frames[-1].context
        if self._prefixes is None or self._prefixes[0] is not lazy:
            prefix = self._statement() + "; "
            self._prefixes = (lazy, _Prefixes(plain=prefix, escaped=sql.escape_percent(prefix)))
        return self._prefixes[1]

    def _transaction_status(self) -> int:
        raw = self.connection.connection
        if raw is None:
            return _IDLE
        try:
            return int(raw.info.transaction_status)
        except self._driver.Error:  # a closed connection: no transaction to protect
            return _UNKNOWN

    def _run(self, statement: str) -> None:
        self._busy = True
        try:
            with self.connection.cursor() as cursor:
                cursor.execute(statement)
        finally:
            self._busy = False


def _text_of(statement: Any, connection: BaseDatabaseWrapper) -> str | None:
    """The SQL text of ``statement``: str as is, psycopg ``sql.Composable`` rendered, else None."""
    if isinstance(statement, str):
        return statement
    as_string = getattr(statement, "as_string", None)
    if as_string is not None and connection.connection is not None:
        text = as_string(connection.connection)
        return text if isinstance(text, str) else None
    return None


def _probe(statement: Any) -> str:
    if isinstance(statement, bytes | bytearray):
        return bytes(statement).decode("utf-8", errors="replace")
    return str(statement)


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


class activate:  # noqa: N801  # used like contextlib's lower-case managers
    """Make ``context`` current on several databases at once, as a context manager.

    The middleware and the command base class use this; ``audit_context`` is
    the friendlier interface. (A small class rather than ``@contextmanager``:
    it runs twice per request, and per chunk of a streaming response.)

    Args:
        context: The context; built at the first write on any of the databases.
        using: Database aliases; default: every PostgreSQL database.
    """

    def __init__(self, context: LazyContext, using: Sequence[str] | None = None) -> None:
        self.context = context
        self.using = using
        self._frames: list[tuple[ContextStack, Frame]] = []

    def __enter__(self) -> LazyContext:
        try:
            for alias in postgresql_aliases() if self.using is None else self.using:
                stack = stack_for(connections[alias])
                self._frames.append((stack, stack.push(self.context)))
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self.context

    def __exit__(self, *exc_info: object) -> None:
        error: BaseException | None = None
        while self._frames:
            stack, frame = self._frames.pop()
            try:
                stack.pop(frame)
            except BaseException as problem:  # noqa: BLE001  # leave every database, then raise the first
                error = error or problem
        if error is not None:
            raise error


def write_context(using: str = DEFAULT_DB_ALIAS) -> None:
    """Hand the current context to the triggers for the rest of the open transaction.

    Writes carry the context themselves; statements that do not look like
    writes (``SELECT some_function()``, ``CALL``, ``DO``) do not. Call this
    inside ``transaction.atomic()`` before such a statement when it changes
    audited tables, so those changes get the context too. The context stays
    visible to the transaction until it ends, a savepoint around this call
    rolls back, or the context is left.

    Args:
        using: The database alias.

    Raises:
        RuntimeError: If no context is active on ``using``.
        TransactionManagementError: If no transaction is open on ``using``.
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

    Entering costs no query. The values are checked when the block is entered
    (a ``ValueError`` then, never a failed write later): ``context_type`` must
    fit its column, custom field values their ``max_length``, and ``context``
    must not refer to itself. Strings lose NUL characters and lone surrogates
    (replaced with U+FFFD), which PostgreSQL cannot store.

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
        """Build the context instance this block records.

        Raises:
            ValueError: If ``context`` refers to itself or is nested too deeply.
        """
        model = get_context_model()
        return model(
            context_type=self.context_type,
            performed_by=self.performed_by,
            performed_by_label=user_label(self.performed_by),
            context=jsonable(self.context or {}, strict=True),
            **self.fields,
        )

    def __enter__(self) -> BaseContext:
        instance = self.build()
        lazy = LazyContext(lambda: instance, strict=True)
        lazy.statement()  # checked now: a bad value fails here, not at the first write
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
