"""Archives of the log (gzip'd CSV by COPY, with a manifest) and retention of an unpartitioned log through them.

These run on the suite's log: unpartitioned, or partitioned when the suite
runs with ``AUDIT_LOG_PARTITIONING`` (their old entries then wait in the
default partition, which retention empties the same way). Dropping whole
partitions: tests/test_retention_partitions.py.
"""

import csv
import datetime
import decimal
import gzip
import hashlib
import io
import json
import uuid

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from audit_log import archive, partitions
from tests.testapp.models import AuditLogEntry

LOG = AuditLogEntry._meta.db_table
LONG_AGO = datetime.datetime(2020, 3, 4, 5, 6, 7, 891011, tzinfo=datetime.timezone(datetime.timedelta(hours=2)))


def add_entries(count, at=LONG_AGO):
    """Write entries straight into the log (as its owner may), with values whose text form is easy to break."""
    entries = [
        AuditLogEntry(
            object_id=f'{index}\r\nline, "quoted" ü \\N',
            table_name="testapp_invoice",
            action="UPDATE",
            at=at + datetime.timedelta(microseconds=index),
            changes={"amount": [decimal.Decimal("10.10"), decimal.Decimal("1E-7")], "big": 2**70, "nul": "\\u0000 x"},
            transaction_id=2**40 + index,
            context_type="test",
            context={"nested": {"list": [1, None, True, 1.5]}, "empty": ""},
            context_id=uuid.UUID(int=index + 1),
            performed_by_label="",
            tenant="" if index % 2 else 'acme, "inc"',
        )
        for index in range(count)
    ]
    AuditLogEntry.objects.bulk_create(entries)
    return [entry.id for entry in entries]


def dump(where="TRUE"):
    """The log's rows in COPY's text form, in id order (what a round trip must keep byte for byte)."""
    chunks = []
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL TIME ZONE 'UTC'")
        archive.copy_out(cursor, f'COPY (SELECT * FROM "{LOG}" WHERE {where} ORDER BY id) TO STDOUT', chunks.append)
    return b"".join(chunks)


def retain(**options):
    out = io.StringIO()
    call_command("audit_log_retention", stdout=out, **options)
    return out.getvalue()


def load(path):
    out = io.StringIO()
    call_command("audit_log_archive_load", str(path), stdout=out)
    return out.getvalue()


def sequence_value():
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT last_value FROM {connection.ops.quote_name(LOG + '_id_seq')}")
        return cursor.fetchone()[0]


def test_unpartitioned_archive_then_delete_then_load_round_trips_byte_for_byte(db, tmp_path):
    ids = add_entries(5)
    recent = add_entries(1, at=datetime.datetime.now(datetime.UTC))
    old = f"at < '{datetime.datetime(2021, 1, 1).isoformat()}+00'"
    before = dump(old)
    out = retain(before="2021-01-01", archive=str(tmp_path), batch=2)
    [data] = tmp_path.glob("*.csv.gz")
    [manifest_path] = tmp_path.glob("*.manifest.json")
    assert data.name == f"{LOG}_before_20201231T230000Z.csv.gz"  # 2021-01-01 in Europe/Oslo
    assert f"Archived 5 entries to {data}" in out
    assert "Deleted 5 entries written before" in out
    assert not AuditLogEntry.objects.filter(id__in=ids).exists()
    manifest = json.loads(manifest_path.read_text())
    assert (manifest["rows"], manifest["min_id"], manifest["max_id"], manifest["table"]) == (5, ids[0], ids[-1], LOG)
    assert manifest["sha256"] == hashlib.sha256(data.read_bytes()).hexdigest()
    assert manifest["csv_sha256"] == hashlib.sha256(gzip.decompress(data.read_bytes())).hexdigest()
    types = dict(manifest["columns"])
    assert (types["id"], types["at"], types["changes"], types["context_id"]) == (
        "bigint",
        "timestamp with time zone",
        "jsonb",
        "uuid",
    )
    assert manifest["range_start"] is None
    assert manifest["range_end"] == "2021-01-01T00:00:00+01:00"
    assert manifest["postgresql_version"]
    # Any CSV reader reads it: a header, then one record per entry, values in PostgreSQL's text form.
    with gzip.open(data, "rt", encoding="utf-8", newline="") as text:
        rows = list(csv.DictReader(text))
    assert [int(row["id"]) for row in rows] == ids
    assert rows[0]["at"] == "2020-03-04 03:06:07.891011+00"
    assert rows[0]["object_id"] == '0\r\nline, "quoted" ü \\N'
    assert json.loads(rows[0]["changes"])["big"] == 2**70
    # The deletion was recorded by the guard, with the archive in the retention context.
    records = AuditLogEntry.objects.filter(table_name=LOG, action="DELETE", context_type="retention")
    assert {r.context["sha256"] for r in records} == {manifest["sha256"]}
    assert sum(r.changes["entries"] for r in records) == 5

    sequence = sequence_value()
    assert f"loaded 5 entries (start to {manifest['range_end']}) into {LOG}" in load(data)
    assert dump(old) == before
    [record] = AuditLogEntry.objects.filter(table_name=LOG, action="INSERT")
    assert sequence_value() == sequence + 1 == record.id  # loaded ids came from the file; only the record drew one
    assert record.context_type == "archive-load"
    assert record.changes["sha256"] == manifest["sha256"]
    assert AuditLogEntry.objects.filter(id=recent[0]).exists()
    # Loaded twice: the ids are taken.
    with pytest.raises(CommandError, match="in the log already"):
        load(manifest_path)
    assert dump(old) == before


def test_archive_load_refuses_a_file_that_does_not_match_its_manifest(db, tmp_path):
    add_entries(3)
    retain(before="2021-01-01", archive=str(tmp_path))
    [data] = tmp_path.glob("*.csv.gz")
    # Same row count, one value changed, recompressed: only the hashes tell.
    text = gzip.decompress(data.read_bytes()).replace(b"acme", b"acne")
    data.write_bytes(gzip.compress(text))
    with pytest.raises(CommandError, match=r"does not match its manifest \(SHA-256 of the file, SHA-256 of the CSV"):
        load(data)
    data.write_bytes(b"not gzip")
    with pytest.raises(CommandError, match="is damaged"):
        load(data)
    assert not AuditLogEntry.objects.filter(at__lt=datetime.datetime(2021, 1, 1, tzinfo=datetime.UTC)).exists()
    with pytest.raises(CommandError, match="No manifest"):
        load(tmp_path / "other.csv.gz")
    with pytest.raises(CommandError, match="is not an archive"):
        load(tmp_path / "other.txt")


def test_retention_dry_run_with_archive_changes_nothing(db, tmp_path):
    add_entries(3)
    before = dump()
    out = retain(keep="365d", archive=str(tmp_path), dry_run=True)
    assert "3 entries written before" in out
    deleted = "would be deleted in batches" if partitions.is_partitioned(connection, LOG) else "would be deleted"
    assert f"{deleted} (after archiving them to {tmp_path / LOG}_before_" in out
    assert dump() == before
    assert list(tmp_path.iterdir()) == []


def test_retention_with_archive_refuses_a_cut_off_too_close_to_now(db, tmp_path):
    # An open transaction could commit entries timed before such a cut-off after the archive is made:
    # they would be deleted unarchived. Refused up front, nothing written, nothing deleted.
    add_entries(2)
    add_entries(1, at=datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=1))
    before = dump()
    tomorrow = (datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=1)).date().isoformat()
    for options in ({"before": tomorrow}, {"keep": "0d"}):
        with pytest.raises(CommandError, match="--archive needs a cut-off at least 1 day before now"):
            retain(archive=str(tmp_path), **options)
    assert dump() == before
    assert list(tmp_path.iterdir()) == []


def test_archive_never_overwrites_another_archive_of_the_same_name(db, tmp_path):
    ids = add_entries(3)
    target = tmp_path / f"{LOG}_before_20201231T230000Z.csv.gz"
    target.write_bytes(b"someone else's file")
    with pytest.raises(CommandError, match="exists with other content"):
        retain(before="2021-01-01", archive=str(tmp_path))
    assert target.read_bytes() == b"someone else's file"
    assert AuditLogEntry.objects.filter(id__in=ids).count() == 3
    assert sorted(path.name for path in tmp_path.iterdir()) == [target.name]  # no temporary file left


def test_archive_write_is_deterministic_and_keeps_an_identical_archive(db, tmp_path):
    add_entries(3)
    [big] = AuditLogEntry.objects.filter(at__lt=datetime.datetime(2021, 1, 1, tzinfo=datetime.UTC))[:1]
    big.pk = None
    big.changes = {"notes": ["x" * 300_000, ""]}  # past the csv module's default field limit
    big.save()
    end = datetime.datetime(2021, 1, 1, tzinfo=datetime.UTC)
    first = archive.write(connection, tmp_path, table=LOG, pk="id", stem="x", range_end=end)
    again = archive.write(connection, tmp_path, table=LOG, pk="id", stem="x", range_end=end)
    assert again.manifest == first.manifest  # the existing manifest is kept as it was
    assert archive.verify(first.data).manifest.rows == 4
