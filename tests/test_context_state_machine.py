"""A hypothesis state machine for the context channel against a real PostgreSQL.

The machine drives one Django connection through random interleavings of

* entering and leaving nested ``audit_context`` blocks (each frame its own
  ``context_type`` and user, left innermost first, also while a transaction
  is still open and from inside a savepoint opened after the frame's writes);
* writes to the audited ``Invoice`` table: ORM ``create()``, ``save()`` of an
  existing row, ``QuerySet.update()`` and ``delete()``, and raw
  ``INSERT`` / ``UPDATE`` / ``EXPLAIN ANALYZE UPDATE`` / ``WITH ... DELETE``
  through ``connection.cursor()``, with and without parameters;
* ``transaction.atomic()`` blocks (nested: savepoints) that commit, raise, or
  ``set_rollback(True)``;
* raw ``BEGIN``, ``SAVEPOINT``, ``ROLLBACK TO SAVEPOINT``, ``RELEASE
  SAVEPOINT``, ``COMMIT``, ``ROLLBACK``, ``/* comment */ DISCARD ALL`` and a
  failing ``SELECT 1/0`` while Django is in autocommit, legal or not (an
  illegal one fails as PostgreSQL says, possibly aborting the transaction);
* ``connection.close()`` outside ``atomic()`` (which rolls back a raw
  transaction).

The model: every write has a unique key (the new ``number`` or ``notes``, or
the deleted row's id) and is attributed to the innermost context active when
its statement ran, or to ``"unknown"`` with no user when none is. Each open
transaction or savepoint is a level holding the entries written in it and the
rows it started from: committing or releasing a level hands its entries to the
one below (or to the committed log), rolling it back drops them and restores
the rows. After every step the committed log (read through a second
connection) must equal the model's committed entries, the log as the driven
connection sees it must equal committed plus pending entries, and the context
a trigger would read now must be none or that of a block still active.
"""

import json
import sys
from dataclasses import dataclass, field
from functools import partial

import pytest
from django.db import DatabaseError, connection, connections, transaction
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test

from audit_log.context import audit_context, stack_for
from audit_log.db.backend.base import DatabaseWrapper
from tests.factories import UserFactory
from tests.testapp.models import AuditLogEntry, Invoice

OBSERVER = "sm_observer"
BOUND = "sm_bound"
INVOICES = Invoice._meta.db_table
UNKNOWN = "unknown"
SAVEPOINT_NAMES = ("s", "t")
WRITES = (
    "insert:orm",
    "insert:raw",
    "insert:raw-params",
    "update:save",
    "update:queryset",
    "update:raw",
    "update:raw-params",
    "update:raw-comment",
    "update:explain-analyze",
    "delete:orm",
    "delete:with",
)
RAW_STATEMENTS = (
    "BEGIN",
    *(f"SAVEPOINT {name}" for name in SAVEPOINT_NAMES),
    *(f"ROLLBACK TO SAVEPOINT {name}" for name in SAVEPOINT_NAMES),
    *(f"RELEASE SAVEPOINT {name}" for name in SAVEPOINT_NAMES),
    "COMMIT",
    "ROLLBACK",
    "/* comment */ DISCARD ALL",
    "SELECT 1/0",
)


class Rollback(Exception):  # noqa: N818  # a signal to atomic(), not an error
    """Raised into ``atomic().__exit__`` to roll the block back."""


@dataclass
class Level:
    """An open transaction or savepoint in the model."""

    kind: str  # "atomic" or "raw"
    name: str | None  # a raw savepoint's name; None for a transaction or an atomic block
    rows_at_start: frozenset[int]
    entries: list[tuple[str, str, int | None]] = field(default_factory=list)


LOG = AuditLogEntry._meta.db_table
# The log as (write key, context_type, performed_by_id) in id order, and the
# context the triggers would read now, in one round trip.
READ_LOG = f"""
SELECT current_setting('audit_log.context', true), coalesce((
    SELECT json_agg(json_build_array(
        CASE action WHEN 'INSERT' THEN changes ->> 'number'
                    WHEN 'UPDATE' THEN changes -> 'notes' ->> 1
                    ELSE 'del-' || object_id END,
        context_type, performed_by_id) ORDER BY id)
    FROM {LOG}), '[]')
"""


def read_log(alias):
    """The log as ``alias`` sees it, and the context a trigger fired now would read there."""
    with connections[alias].cursor() as cursor:
        cursor.execute(READ_LOG)
        setting, entries = cursor.fetchone()
    if isinstance(entries, str):  # psycopg2 leaves json to the caller
        entries = json.loads(entries)
    return [tuple(entry) for entry in entries], setting


class ContextMachine(RuleBasedStateMachine):
    """Drives the connection ``alias`` (set by the test) and keeps the model."""

    alias = "default"
    users = (None,)

    def __init__(self):
        super().__init__()
        self.conn = connections[self.alias]
        assert not stack_for(self.conn).frames
        with connections[OBSERVER].cursor() as cursor:
            # The log last: DELETE is logged. (TRUNCATE is left to privileges by the log's guard.)
            cursor.execute(f"DELETE FROM {INVOICES}; TRUNCATE {LOG}")
        self.counter = 0
        self.frames = []  # (audit_context, context_type, performed_by_id), innermost last
        self.atomics = []  # entered transaction.atomic() objects, innermost last
        self.levels: list[Level] = []  # open transaction, then savepoints
        self.aborted = False  # the raw transaction failed: only ROLLBACK (TO SAVEPOINT) or COMMIT now
        self.rows: set[int] = set()  # invoice ids the driven connection sees
        self.committed: list[tuple[str, str, int | None]] = []

    # --- model helpers ----------------------------------------------------------

    @property
    def raw_open(self):
        return bool(self.levels) and self.levels[0].kind == "raw"

    def next_key(self):
        self.counter += 1
        return f"w{self.counter}"

    def log(self, key):
        context_type, user_id = self.frames[-1][1:] if self.frames else (UNKNOWN, None)
        (self.levels[-1].entries if self.levels else self.committed).append((key, context_type, user_id))

    def open_level(self, kind, name=None):
        self.levels.append(Level(kind, name, frozenset(self.rows)))

    def release_level(self, index):
        merged = [entry for level in self.levels[index:] for entry in level.entries]
        (self.levels[index - 1].entries if index else self.committed).extend(merged)
        del self.levels[index:]

    def rollback_level(self, index, *, keep):
        self.rows = set(self.levels[index].rows_at_start)
        if keep:  # ROLLBACK TO SAVEPOINT: the savepoint stays
            self.levels[index].entries = []
            del self.levels[index + 1 :]
        else:
            del self.levels[index:]

    def savepoint_index(self, name):
        """Index of the newest raw savepoint called ``name``, or None."""
        for index in range(len(self.levels) - 1, 0, -1):
            if self.levels[index].name == name:
                return index
        return None

    def pick(self, index):
        return sorted(self.rows)[index % len(self.rows)]

    def objects(self):
        return Invoice.objects.using(self.alias)

    # --- contexts -----------------------------------------------------------------

    @precondition(lambda self: len(self.frames) < 4)
    @rule(user=st.integers(min_value=0, max_value=3))
    def enter_context(self, user):
        self.counter += 1
        context_type = f"ctx-{self.counter}"
        performed_by = self.users[user]
        block = audit_context(
            context_type,
            performed_by=performed_by,
            context={"frame": self.counter, "note": "50% off"},
            using=self.alias,
        )
        block.__enter__()
        self.frames.append((block, context_type, performed_by.pk if performed_by else None))

    @precondition(lambda self: self.frames)
    @rule()
    def leave_context(self):
        block, _, _ = self.frames.pop()
        block.__exit__(None, None, None)

    # --- atomic blocks --------------------------------------------------------

    @precondition(lambda self: not self.raw_open and len(self.atomics) < 3)
    @rule()
    def enter_atomic(self):
        block = transaction.atomic(using=self.alias)
        block.__enter__()
        self.atomics.append(block)
        self.open_level("atomic")

    @precondition(lambda self: self.atomics)
    @rule(outcome=st.sampled_from(["commit", "raise", "set_rollback"]))
    def leave_atomic(self, outcome):
        block = self.atomics.pop()
        if outcome == "commit":
            block.__exit__(None, None, None)
            self.release_level(len(self.levels) - 1)
        else:
            if outcome == "raise":
                block.__exit__(Rollback, Rollback(), None)
            else:
                transaction.set_rollback(True, using=self.alias)
                block.__exit__(None, None, None)
            self.rollback_level(len(self.levels) - 1, keep=False)

    # --- writes -------------------------------------------------------------------

    @precondition(lambda self: not self.aborted)
    @rule(how=st.sampled_from(WRITES), index=st.integers(0, 99))
    def write(self, how, index):
        """One write, attributed in the model to the innermost context now."""
        action, _, via = how.partition(":")
        if action != "insert" and not self.rows:
            action, via = "insert", "orm"
        if action == "delete" and via == "orm" and self.raw_open:
            # The collector opens atomic(savepoint=False), which cannot switch
            # autocommit off inside a transaction Django did not open.
            via = "with"
        if action == "delete":
            pk = self.pick(index)
            self.delete(via, pk)
            self.log(f"del-{pk}")
            return
        key = self.next_key()
        if action == "insert":
            self.rows.add(self.insert(key, via))
        else:
            self.update(key, via, self.pick(index))
        self.log(key)

    def insert(self, key, via):
        if via == "orm":
            return self.objects().create(number=key).pk
        statement = f"INSERT INTO {INVOICES} (number, status, amount, notes) VALUES (%s, 'draft', 0, '') RETURNING id"
        with self.conn.cursor() as cursor:
            if via == "raw":
                cursor.execute(statement.replace("%s", f"'{key}'"))
            else:
                cursor.execute(statement, [key])
            return cursor.fetchone()[0]

    def update(self, key, via, pk):
        if via == "save":
            invoice = self.objects().get(pk=pk)
            invoice.notes = key
            invoice.save()
            return
        if via == "queryset":
            assert self.objects().filter(pk=pk).update(notes=key) == 1
            return
        statement = {
            "raw": f"UPDATE {INVOICES} SET notes = '{key}' WHERE id = {pk}",
            "raw-params": f"UPDATE {INVOICES} SET notes = %s WHERE id = %s",
            "raw-comment": f"-- fix\n/* ticket */ UPDATE {INVOICES} SET notes = '{key}' WHERE id = {pk}",
            "explain-analyze": f"EXPLAIN (ANALYZE, COSTS OFF) UPDATE {INVOICES} SET notes = %s WHERE id = %s",
        }[via]
        with self.conn.cursor() as cursor:
            if "%s" in statement:
                cursor.execute(statement, [key, pk])
            else:
                cursor.execute(statement)
                assert cursor.rowcount == 1

    def delete(self, via, pk):
        if via == "orm":
            self.objects().get(pk=pk).delete()
        else:
            with self.conn.cursor() as cursor:
                cursor.execute(
                    f"WITH gone AS (DELETE FROM {INVOICES} WHERE id = %s RETURNING id) SELECT id FROM gone", [pk]
                )
                assert cursor.fetchall() == [(pk,)]
        self.rows.remove(pk)

    # --- raw transaction statements --------------------------------------------------

    @precondition(lambda self: not self.atomics)
    @rule(statement=st.sampled_from(RAW_STATEMENTS))
    def raw_statement(self, statement):
        fails = self.model_raw_statement(statement)
        with self.conn.cursor() as cursor:
            try:
                cursor.execute(statement)
            except DatabaseError:
                failed = True
            else:
                failed = False
        assert failed == fails, f"{statement!r}: PostgreSQL {'failed' if failed else 'succeeded'}, the model disagrees"

    def model_raw_statement(self, statement):
        """Apply ``statement`` to the model; return whether PostgreSQL must refuse it."""
        word, _, name = statement.rpartition(" ")
        if not self.raw_open:
            # Autocommit: COMMIT and ROLLBACK only warn, savepoint commands fail without effect.
            if statement == "BEGIN":
                self.open_level("raw")
            return "SAVEPOINT" in statement or statement == "SELECT 1/0"
        if statement in {"COMMIT", "ROLLBACK"}:
            if statement == "COMMIT" and not self.aborted:
                self.release_level(0)
            else:  # COMMIT of a failed transaction rolls it back
                self.rollback_level(0, keep=False)
            self.aborted = False
            return False
        if word == "ROLLBACK TO SAVEPOINT":
            index = self.savepoint_index(name)
            if index is None:
                self.aborted = True
                return True
            self.rollback_level(index, keep=True)
            self.aborted = False
            return False
        if self.aborted:
            return True  # "current transaction is aborted, commands ignored until end of transaction block"
        if statement == "BEGIN":
            return False  # a warning: already in a transaction
        if word == "SAVEPOINT":
            self.open_level("raw", name)
            return False
        if word == "RELEASE SAVEPOINT" and (index := self.savepoint_index(name)) is not None:
            self.release_level(index)
            return False
        # An unknown savepoint, DISCARD ALL in a transaction block, division by zero.
        self.aborted = True
        return True

    @precondition(lambda self: not self.atomics)
    @rule()
    def close_connection(self):
        if self.raw_open:  # the server rolls back what the connection left open
            self.rollback_level(0, keep=False)
            self.aborted = False
        self.conn.close()

    # --- checks ---------------------------------------------------------------------

    @invariant()
    def log_matches_the_model(self):
        assert len(stack_for(self.conn).frames) == len(self.frames)
        assert read_log(OBSERVER)[0] == self.committed, "the committed log"
        if self.aborted or self.conn.connection is None:
            return  # nothing can be read now / do not reopen a closed connection early
        pending = [entry for level in self.levels for entry in level.entries]
        visible, setting = read_log(self.alias)
        assert visible == self.committed + pending, "the log as the driven connection sees it"
        # The triggers may see no context, or one whose block is still active
        # (an outer one, after a savepoint rolled back), never a context that was left.
        seen = json.loads(setting)["context_type"] if setting else None
        assert seen in {None, *(context_type for _, context_type, _ in self.frames)}, "a context outlived its block"

    def teardown(self):
        """Roll back what is open and leave every context, so the next example starts clean."""
        failing = sys.exc_info()[0] is not None  # a step failed: clean up, report that failure only
        cleanups = [
            *(partial(block.__exit__, Rollback, Rollback(), None) for block in reversed(self.atomics)),
            self.rollback_raw_transaction,
            *(partial(block.__exit__, None, None, None) for block, _, _ in reversed(self.frames)),
        ]
        errors = []
        for cleanup in cleanups:
            try:
                cleanup()
            except Exception as error:  # noqa: BLE001  # every cleanup must run; the first error is raised below
                errors.append(error)
        self.atomics, self.frames = [], []
        if self.raw_open:
            self.rollback_level(0, keep=False)
        if errors or failing:
            self.conn.close()  # whatever state a failure left, the next example gets a new session
        if errors and not failing:
            raise errors[0]
        if not failing:
            assert not stack_for(self.conn).frames
            assert self.conn.get_autocommit()
            assert not self.conn.in_atomic_block
            assert read_log(OBSERVER)[0] == self.committed

    def rollback_raw_transaction(self):
        if self.raw_open and self.conn.connection is not None:
            with self.conn.cursor() as cursor:
                cursor.execute("ROLLBACK")


def dynamic_connection(alias, **options):
    settings_dict = {**connection.settings_dict, "OPTIONS": {**connection.settings_dict["OPTIONS"], **options}}
    connections[alias] = DatabaseWrapper(settings_dict, alias)
    return connections[alias]


@pytest.mark.parametrize(
    "binding",
    [
        "client",
        pytest.param(
            "server",
            marks=pytest.mark.skipif(
                connection.Database.__name__ != "psycopg", reason="server-side binding is a psycopg 3 option"
            ),
        ),
    ],
)
def test_context_attribution_survives_random_transactions(transactional_db, binding):
    # The observer reads what is committed, beside the driven connection.
    dynamic = {OBSERVER: dynamic_connection(OBSERVER)}
    if binding == "server":
        dynamic[BOUND] = dynamic_connection(BOUND, server_side_binding=True)
    ContextMachine.alias = BOUND if binding == "server" else "default"
    ContextMachine.users = (None, *(UserFactory(username=f"sm-{name}") for name in ("alice", "bob", "carol")))
    try:
        run_state_machine_as_test(
            ContextMachine,
            settings=settings(
                max_examples=100,
                stateful_step_count=60,
                deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
            ),
        )
    finally:
        ContextMachine.alias, ContextMachine.users = "default", (None,)
        for alias, wrapper in dynamic.items():  # `alias in connections` only knows configured aliases
            wrapper.close()
            del connections[alias]
