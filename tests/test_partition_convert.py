"""Converting an existing unpartitioned log into a partitioned one, while the application keeps writing.

Each test gets a throwaway database whose log is created unpartitioned, since
the conversion renames and creates tables and commits as it goes.
"""

import datetime
import io
import threading
import time

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, connections, transaction
from django.test import override_settings

from audit_log import guard, partition_convert, partitions
from audit_log.context import audit_context
from tests.benchmark_db import create_database, drop_database
from tests.testapp.models import AuditLogEntry, Customer

LOG = AuditLogEntry._meta.db_table
OLD = f"{LOG}_unpartitioned"


@pytest.fixture
def unpartitioned_db(django_db_blocker):
    """A database of its own whose log is a plain table, with entries of last year and of now."""
    with django_db_blocker.unblock(), override_settings(AUDIT_LOG_PARTITIONING=None):
        old = create_database("partition_convert")
        try:
            assert not partitions.is_partitioned(connection, LOG)
            with audit_context("test"):
                for index in range(30):
                    Customer.objects.create(name=f"c{index}")
            with guard.log_maintenance():  # some entries from a year ago
                AuditLogEntry.objects.filter(id__lte=10).update(at=datetime.datetime(2025, 3, 5, tzinfo=datetime.UTC))
            with override_settings(AUDIT_LOG_PARTITIONING="month"):
                yield
        finally:
            drop_database(old)


def run(statement, params=None):
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.fetchall() if cursor.description else None


def rows(table):
    return run(f'SELECT * FROM "{table}" ORDER BY id')


def in_thread(target):
    """Run ``target`` on a connection of its own (a thread), returning the thread and a 'started' event."""
    started = threading.Event()

    def body():
        try:
            target(started)
        finally:
            connections.close_all()

    thread = threading.Thread(target=body)
    thread.start()
    return thread, started


def test_convert_copies_in_batches_without_losing_concurrent_writes(unpartitioned_db):
    # A writer whose entry gets a low id but commits late, after a later entry committed and
    # after the copy has gone past its id: the copy must wait for it rather than skip its id.
    release, slow_entry = threading.Event(), []

    def slow_writer(started):
        with transaction.atomic():
            Customer.objects.create(name="slow")
            slow_entry.append(AuditLogEntry.objects.latest("id").id)
            started.set()
            # Released once batches were copied past its id (which a correct copy never does
            # before this commits: it waits for writers first, so this times out instead).
            release.wait(4)

    slow, slow_started = in_thread(slow_writer)
    slow_started.wait(10)
    Customer.objects.create(name="fast")

    written_between, lines = [], []

    def between():
        customer = Customer.objects.create(name=f"between{len(written_between)}")
        written_between.append(customer.pk)
        if int(lines[-1].rpartition(".")[2]) >= slow_entry[0]:
            release.set()

    waiting = []

    def on_final_lock():
        # A writer that arrives during the swap waits for the lock, then writes into the new table.
        def late_writer(started):
            started.set()
            Customer.objects.create(name="late")

        thread, started = in_thread(late_writer)
        started.wait(10)
        for _ in range(100):
            if run("SELECT count(*) FROM pg_locks WHERE NOT granted")[0][0]:
                break
            time.sleep(0.05)
        else:
            pytest.fail("the late writer never waited for the lock")
        waiting.append(thread)

    result = partition_convert.convert(
        connection,
        AuditLogEntry,
        "month",
        batch=7,
        progress=lines.append,
        between_batches=between,
        on_final_lock=on_final_lock,
    )
    slow.join(10)
    waiting[0].join(10)

    assert partitions.is_partitioned(connection, LOG)
    assert result.old_table == OLD
    assert len(written_between) >= 4  # several batches, each followed by a write
    assert sum(line.startswith("Copied ids") for line in lines) >= 4
    # Every entry of the old table is in the new one, byte for byte, and the late one only there.
    old_rows, new_rows = rows(OLD), rows(LOG)
    assert result.copied == len(old_rows)
    assert new_rows[: len(old_rows)] == old_rows
    names = set(Customer.objects.values_list("name", flat=True))
    assert {"slow", "fast", "late"} <= names
    logged = {e.changes.get("name") for e in AuditLogEntry.objects.filter(action="INSERT")}
    assert {"slow", "fast", "late", *(f"between{i}" for i in range(len(written_between)))} <= logged
    [late] = AuditLogEntry.objects.filter(action="INSERT", changes__name="late")
    assert late.id > run(f'SELECT max(id) FROM "{OLD}"')[0][0]  # the sequence went on after every copied id


def test_converted_log_keeps_names_sequence_guard_and_partitions(unpartitioned_db):
    indexes_before = sorted(name for [name] in run("SELECT indexname FROM pg_indexes WHERE tablename = %s", [LOG]))
    [[sequence]] = run("SELECT pg_get_serial_sequence(%s, 'id')", [LOG])
    out = io.StringIO()
    call_command("audit_log_partitions", "--convert", "--batch", "12", stdout=out)
    text = out.getvalue()
    assert f"Converted {LOG}: 31 entries copied into a partitioned table." in text
    assert f'The old table is kept as {OLD}. Check the log, then drop it: DROP TABLE "{OLD}";' in text
    # Django's migration state names every index and the sequence as before.
    indexes_after = sorted(name for [name] in run("SELECT indexname FROM pg_indexes WHERE tablename = %s", [LOG]))
    assert indexes_after == indexes_before
    assert run("SELECT pg_get_serial_sequence(%s, 'id')", [LOG]) == [(sequence,)]
    # Old entries went into last year's partition; now's into the current one; none in the default.
    found = {p.name: p for p in partitions.list_partitions(connection, LOG, exact_counts=True)}
    assert found[f"{LOG}_p202503"].rows == 10
    assert found[f"{LOG}_default"].rows == 0
    now_partition = partitions.partition_name(
        LOG, partitions.partition_range(datetime.datetime.now(datetime.UTC), "month")[0], "month"
    )
    assert found[now_partition].rows == 21
    # The guard, maintenance record and retention function work on the new table.
    call_command("audit_log_status", stdout=io.StringIO())
    with pytest.raises(Exception, match="refused"), transaction.atomic():
        run(f'DELETE FROM "{LOG}"')
    records = AuditLogEntry.objects.filter(table_name=LOG, action="UPDATE")
    assert records.count() == 1  # the fixture's backdating, copied over
    with guard.log_maintenance():
        AuditLogEntry.objects.filter(id=1).update(object_id="x")
    assert records.count() == 2
    # Writes continue; the old table keeps its guard until the user drops it.
    customer = Customer.objects.create(name="after")
    assert [e.action for e in customer.audit_logs.all()] == ["INSERT"]
    with pytest.raises(Exception, match="refused"), transaction.atomic():
        run(f'DELETE FROM "{OLD}"')
    # Converting again is refused with a reason.
    with pytest.raises(CommandError, match="already partitioned"):
        call_command("audit_log_partitions", "--convert")
