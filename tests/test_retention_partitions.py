"""Retention on a partitioned log: archive, detach and drop whole partitions; load them back; seals still verify.

Runs in a throwaway database whose log is created partitioned by month
(``AUDIT_LOG_PARTITIONING = "month"`` while it is migrated), whatever the
suite's own setting, since retention drops tables and commits.
"""

import datetime
import decimal
import io
import itertools
import json
import uuid

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, transaction
from django.test import override_settings

from audit_log import archive, partitions, seal, seal_verify
from audit_log.context import audit_context
from audit_log.models import Seal, SealChunk
from tests.benchmark_db import create_database, drop_database
from tests.testapp.models import AuditLogEntry

LOG = AuditLogEntry._meta.db_table
UTC = datetime.UTC


def month(year, number):
    return datetime.datetime(year, number, 1, tzinfo=UTC)


#: Five old months, oldest first; the cut-off falls in the middle of the fourth.
MONTHS = [month(2023, number) for number in range(1, 7)]  # Jan..Jun: five ranges Jan..May
CUTOFF = datetime.datetime(2023, 4, 15, tzinfo=UTC)


@pytest.fixture(scope="module")
def partitioned_db(django_db_blocker):
    """A database of its own whose log is partitioned by month (dropped at the end)."""
    with django_db_blocker.unblock(), override_settings(AUDIT_LOG_PARTITIONING="month"):
        old = create_database("retention_partitions")
        try:
            assert partitions.is_partitioned(connection, LOG)
            yield
        finally:
            drop_database(old)


def run(statement, params=None):
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.fetchall() if cursor.description else None


@pytest.fixture
def log(partitioned_db, tmp_path):
    """An empty log with partitions for January to May 2023 (besides the default and current ones)."""
    run(f'TRUNCATE "{LOG}", "{SealChunk._meta.db_table}", "{Seal._meta.db_table}"')
    for partition in partitions.list_partitions(connection, LOG):
        if not partition.is_default and partition.end <= month(2024, 1):
            run(f'DROP TABLE "{partition.name}"')
    for start, end in itertools.pairwise(MONTHS):
        for statement in partitions.create_partition_statements(LOG, start, end, "month"):
            run(statement)
    return tmp_path


def add_entries(moments, **values):
    """Write one entry per moment, straight into the log (as its owner may), with varied column values."""
    entries = [
        AuditLogEntry(
            content_type=None,
            object_id=f'{index}\nline, "quoted" ü',
            table_name="testapp_invoice",
            action="UPDATE",
            at=moment,
            changes={"amount": [decimal.Decimal("10.10"), decimal.Decimal("1e-7")], "big": 2**70, "text": "a\tb"},
            transaction_id=1000 + index,
            context_type="test",
            context={"nested": {"list": [1, None, True]}, "n": index},
            context_id=uuid.UUID(int=index + 1),
            performed_by_label="",
            **values,
        )
        for index, moment in enumerate(moments)
    ]
    AuditLogEntry.objects.bulk_create(entries)
    return [entry.id for entry in entries]


def dump(where="TRUE"):
    """The log's rows as COPY prints them, in id order: what must survive a round trip byte for byte."""
    chunks = []
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL TIME ZONE 'UTC'")
        archive.copy_out(cursor, f'COPY (SELECT * FROM "{LOG}" WHERE {where} ORDER BY id) TO STDOUT', chunks.append)
    return b"".join(chunks)


def shape(partition):
    """The index definitions (named by column, not by name) and triggers of a partition."""
    indexes = run(
        "SELECT regexp_replace(pg_get_indexdef(indexrelid), '^.* USING ', '') FROM pg_index "
        "WHERE indrelid = to_regclass(%s) ORDER BY 1",
        [f'"{partition}"'],
    )
    triggers = run(
        "SELECT tgname FROM pg_trigger WHERE tgrelid = to_regclass(%s) AND NOT tgisinternal ORDER BY 1",
        [f'"{partition}"'],
    )
    return indexes, triggers


def retain(*args, **options):
    out = io.StringIO()
    call_command("audit_log_retention", *args, stdout=out, **options)
    return out.getvalue()


def names():
    return [p.name for p in partitions.list_partitions(connection, LOG) if not p.is_default]


def monthly(count_per_month=3):
    """Entries in each of January to May, the middle of each month."""
    moments = [start + datetime.timedelta(days=14, hours=n) for start in MONTHS[:5] for n in range(count_per_month)]
    return add_entries(moments)


def test_retention_drops_only_partitions_entirely_older_than_the_cutoff_and_records_each(log):
    ids = monthly()
    out = retain(before=CUTOFF.isoformat(), archive=str(log))
    gone = [f"{LOG}_p202301", f"{LOG}_p202302", f"{LOG}_p202303"]
    assert not set(gone) & set(names())
    assert {f"{LOG}_p202304", f"{LOG}_p202305"} <= set(names())
    assert f"Partition {LOG}_p202304 (2023-04-01T00:00:00+00:00 to 2023-05-01T00:00:00+00:00) straddles" in out
    assert "kept whole" in out
    assert "detach and drop took" in out
    assert list(AuditLogEntry.objects.filter(id__in=ids).values_list("id", flat=True).order_by("id")) == ids[9:]
    records = list(AuditLogEntry.objects.filter(table_name=LOG, action="DELETE").order_by("id"))
    assert [r.changes["partition"] for r in records] == gone
    first = records[0]
    assert first.context_type == "retention"
    assert first.context["before"] == CUTOFF.isoformat()
    assert first.changes["entries"] == 3
    assert (first.changes["first_id"], first.changes["last_id"]) == (ids[0], ids[2])
    assert first.changes["range_start"] == "2023-01-01T00:00:00+00:00"
    assert first.changes["range_end"] == "2023-02-01T00:00:00+00:00"
    manifest = json.loads((log / f"{LOG}_p202301.manifest.json").read_text())
    assert first.changes["archive"] == str(log / f"{LOG}_p202301.csv.gz")
    assert first.changes["sha256"] == manifest["sha256"]
    assert (manifest["rows"], manifest["min_id"], manifest["max_id"]) == (3, ids[0], ids[2])
    assert manifest["partition"] == f"{LOG}_p202301"
    # Run again: nothing more is old enough.
    assert "Dropped 0 partitions" in retain(before=CUTOFF.isoformat(), archive=str(log))


def test_retention_dry_run_changes_nothing(log):
    monthly()
    before = dump()
    out = retain(before=CUTOFF.isoformat(), archive=str(log), dry_run=True)
    assert (
        f"Would drop partition {LOG}_p202301 (2023-01-01T00:00:00+00:00 to 2023-02-01T00:00:00+00:00): 3 entries" in out
    )
    assert "3 partitions written before" in out
    assert dump() == before
    assert f"{LOG}_p202301" in names()
    assert list(log.iterdir()) == []


def test_partition_archive_loads_back_byte_identical(log):
    ids = monthly()
    january = "at >= '2023-01-01T00:00:00+00' AND at < '2023-02-01T00:00:00+00'"
    before = dump(january)
    retain(before="2023-02-01T00:00:00+00:00", archive=str(log))
    assert f"{LOG}_p202301" not in names()
    assert dump(january) == b""
    out = io.StringIO()
    call_command("audit_log_archive_load", str(log / f"{LOG}_p202301.csv.gz"), stdout=out)
    assert (
        f"loaded 3 entries (2023-01-01T00:00:00+00:00 to 2023-02-01T00:00:00+00:00) into {LOG}_p202301"
        in out.getvalue()
    )
    assert dump(january) == before
    [january_partition] = [p for p in partitions.list_partitions(connection, LOG) if p.name == f"{LOG}_p202301"]
    assert (january_partition.start, january_partition.end) == (MONTHS[0], MONTHS[1])
    # Like any other partition: the log's indexes and its append-only guard.
    assert shape(f"{LOG}_p202301") == shape(f"{LOG}_p202302")
    assert ("audit_log_guard",) in shape(f"{LOG}_p202301")[1]
    assert AuditLogEntry.objects.filter(at__lt=MONTHS[1]).count() == 3  # the admin's queryset sees them again
    [loaded] = AuditLogEntry.objects.filter(table_name=LOG, action="INSERT")
    assert loaded.context_type == "archive-load"
    assert (loaded.changes["entries"], loaded.changes["first_id"], loaded.changes["last_id"]) == (3, ids[0], ids[2])
    # Loading it twice is refused: the partition holds entries.
    with pytest.raises(CommandError, match="holds entries already"):
        call_command("audit_log_archive_load", str(log / f"{LOG}_p202301.manifest.json"), stdout=io.StringIO())
    assert dump(january) == before


def test_archive_load_refuses_ids_that_are_in_the_log_already(log):
    monthly()
    retain(before="2023-02-01T00:00:00+00:00", archive=str(log))
    # Someone put entries with the archived ids back elsewhere (here: the default partition).
    archived = json.loads((log / f"{LOG}_p202301.manifest.json").read_text())
    add_entries([datetime.datetime(2020, 1, 1, tzinfo=UTC)])
    newest = AuditLogEntry.objects.filter(at__year=2020).get()
    with transaction.atomic():
        run("SET LOCAL audit_log.maintenance = 'on'")
        run(f'UPDATE "{LOG}" SET id = %s WHERE id = %s', [archived["min_id"], newest.id])
    with pytest.raises(CommandError, match="in the log already"):
        call_command("audit_log_archive_load", str(log / f"{LOG}_p202301.csv.gz"), stdout=io.StringIO())
    assert AuditLogEntry.objects.filter(at__lt=MONTHS[1], at__gte=MONTHS[0]).count() == 0


def test_seal_verify_reports_a_partition_drop_as_retention_not_tampering(log):
    ids = monthly()
    seal.seal_log(wait=0)
    retain(before="2023-03-01T00:00:00+00:00")
    report = seal_verify.verify_log(full=True, record=False)
    assert report.problems == []
    assert [(n.kind, n.ids) for n in report.notices] == [("retained", tuple(ids[:6]))]
    # A deletion from a partition that was not dropped is still a problem.
    with transaction.atomic(), audit_context("retention", context={"before": "2999-01-01T00:00:00+00:00"}):
        run("SET LOCAL audit_log.maintenance = 'on'")
        run(f'DELETE FROM "{LOG}" WHERE id = %s', [ids[10]])
    report = seal_verify.verify_log(full=True, record=False)
    assert [(p.kind, p.ids) for p in report.problems] == [("deleted", (ids[10],))]


def test_retention_keeps_a_partition_that_changed_after_archiving(log, monkeypatch):
    monthly()
    from audit_log import retention

    real = archive.write

    def write_then_add(*args, **kwargs):
        written = real(*args, **kwargs)
        add_entries([MONTHS[0] + datetime.timedelta(days=20)])
        return written

    monkeypatch.setattr(retention.archive, "write", write_then_add)
    with pytest.raises(CommandError, match="changed after it was archived"):
        retain(before="2023-02-01T00:00:00+00:00", archive=str(log))
    assert f"{LOG}_p202301" in names()
    assert AuditLogEntry.objects.filter(at__lt=MONTHS[1]).count() == 4


def test_seal_verify_does_not_excuse_a_deletion_inside_a_dropped_partitions_id_range(log):
    # Ids are not ordered by time across partitions: a March entry between January's ids.
    ids = add_entries([MONTHS[0] + datetime.timedelta(days=1), MONTHS[2] + datetime.timedelta(days=1)])
    ids += add_entries([MONTHS[0] + datetime.timedelta(days=2)])
    seal.seal_log(wait=0)
    retain(before="2023-02-01T00:00:00+00:00")
    report = seal_verify.verify_log(full=True, record=False)
    assert (report.problems, [(n.kind, n.ids) for n in report.notices]) == ([], [("retained", (ids[0], ids[2]))])
    with transaction.atomic():
        run("SET LOCAL audit_log.maintenance = 'on'")
        run(f'DELETE FROM "{LOG}" WHERE id = %s', [ids[1]])
    # Three ids gone from the range of a record that removed two: none of them is excused.
    report = seal_verify.verify_log(full=True, record=False)
    assert [(p.kind, p.ids) for p in report.problems] == [("deleted", tuple(ids))]
    assert report.notices == []


def test_account_matches_deleted_ids_to_records_with_room():
    # Overlapping ranges (interleaved partitions): every id finds a record.
    records = [(100, 1, 10, 9), (101, 9, 20, 11)]
    deleted = [i for i in range(1, 21) if i != 9] + [9]
    matched = seal_verify._account(sorted(deleted), records)
    assert sorted(matched) == list(range(1, 21))
    assert sum(1 for record in matched.values() if record == 100) <= 9
    # One id too many in a record's range: none of that record's ids is excused.
    matched = seal_verify._account(list(range(1, 5)), [(100, 1, 4, 3), (101, 10, 12, 3)])
    assert matched == {}
    assert seal_verify._account([5, 11], [(100, 1, 4, 3), (101, 10, 12, 3)]) == {11: 101}
