"""Sealing the log into a hash chain, and verifying it: ``audit_log_seal`` and ``audit_log_verify``."""

import io
import threading
import time

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command
from django.db import connection, connections, transaction

from audit_log import seal, seal_verify
from audit_log.conf import conf
from audit_log.context import audit_context
from audit_log.models import Seal, SealChunk
from tests.testapp.models import AuditLogEntry, Invoice

LOG = AuditLogEntry._meta.db_table


def write(count, number="S"):
    """Write ``count`` entries (one INSERT statement) and return their ids."""
    with audit_context("test"):
        Invoice.objects.bulk_create(Invoice(number=f"{number}-{n}") for n in range(count))
    return list(AuditLogEntry.objects.filter(table_name="testapp_invoice").order_by("id").values_list("id", flat=True))


def run(statement, params=None, using="default"):
    with connections[using].cursor() as cursor:
        cursor.execute(statement, params)


def tamper(statement, params=None):
    """Run an UPDATE or DELETE on the log, past its append-only guard as the guard allows its owner."""
    with transaction.atomic():
        run("SET LOCAL audit_log.maintenance = 'on'")
        run(statement, params)
        run("SET LOCAL audit_log.maintenance = ''")


def seal_now(**options):
    out = io.StringIO()
    call_command("audit_log_seal", stdout=out, no_color=True, **options)
    return out.getvalue()


def verify(**options):
    """Run audit_log_verify; return (exit code, output, error)."""
    out = io.StringIO()
    try:
        call_command("audit_log_verify", stdout=out, no_color=True, **options)
    except CommandError as error:
        return error.returncode, out.getvalue(), str(error)
    return 0, out.getvalue(), ""


def problems(**options):
    return [(p.kind, p.ids) for p in seal_verify.verify_log(**options).problems]


# --- sealing -----------------------------------------------------------------------


@pytest.mark.django_db
def test_seal_then_verify_reports_no_problems():
    ids = write(25)
    out = seal_now(chunk_size=10)
    assert f"25 entries (ids {ids[0]} to {ids[-1]})" in out
    [made] = Seal.objects.all()
    assert (made.first_id, made.last_id, made.entry_count, made.algorithm) == (ids[0], ids[-1], 25, "sha256")
    assert bytes(made.previous_hash) == b""
    assert SealChunk.objects.filter(seal=made).count() == len({i // 10 for i in ids})  # blocks of 10 ids
    assert bytes(made.hash).hex() in out
    code, out, _ = verify()
    assert code == 0
    assert "no problems" in out


@pytest.mark.django_db
def test_seal_chains_each_seal_to_the_previous_one():
    write(5)
    first = seal.seal_log()
    ids = write(3, number="T")
    second = seal.seal_log()
    assert (second.after_id, second.first_id, second.last_id, second.entry_count) == (
        first.last_id,
        ids[-3],
        ids[-1],
        3,
    )
    assert bytes(Seal.objects.get(pk=second.seal_id).previous_hash) == first.hash
    assert problems() == []


@pytest.mark.django_db
def test_seal_with_nothing_new_writes_no_seal():
    assert seal.seal_log() is None
    write(2)
    seal.seal_log()
    assert "Nothing new to seal" in seal_now()
    assert Seal.objects.count() == 1


@pytest.mark.django_db
def test_seal_refuses_an_id_sequence_that_hands_out_ids_in_batches():
    run(f"ALTER SEQUENCE {LOG}_id_seq CACHE 20")
    with pytest.raises(CommandError, match="CACHE 20") as error:
        seal_now()
    assert error.value.returncode == 2


@pytest.mark.django_db
def test_seal_refuses_to_run_while_another_seal_holds_the_lock(other_connection):
    write(2)
    other_connection.set_autocommit(True)
    with other_connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", [f"audit_log_seal {LOG}"])
    with pytest.raises(seal.SealError, match="Another audit_log_seal"):
        seal.seal_log()
    assert Seal.objects.count() == 0


@pytest.mark.django_db
def test_seal_that_raced_another_seal_stops(monkeypatch):
    write(2)
    seal.seal_log()
    write(2, number="T")
    monkeypatch.setattr(seal, "read_seals", lambda cursor, tables: [])  # the other seal committed meanwhile
    with pytest.raises(seal.SealError, match="at the same time"):
        seal.seal_log()
    assert Seal.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_seal_refuses_a_repeatable_read_transaction():
    with transaction.atomic():
        run("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        with pytest.raises(seal.SealError, match="repeatable read"):
            seal.seal_log()


# --- what verification finds -------------------------------------------------------------


@pytest.mark.django_db
def test_verify_reports_a_changed_entry_by_id():
    ids = write(30)
    seal.seal_log(chunk_size=10)
    tamper(f"UPDATE {LOG} SET changes = '{{}}' WHERE id = %s", [ids[12]])
    code, out, error = verify()
    assert code == 1
    assert f"entries changed after sealing: {ids[12]}" in out
    assert "1 problems found" in error
    assert problems(full=True) == [("changed", (ids[12],))]


@pytest.mark.django_db
def test_verify_reports_deleted_entries_by_id():
    ids = write(30)
    seal.seal_log(chunk_size=10)
    tamper(f"DELETE FROM {LOG} WHERE id = ANY(%s)", [[ids[3], ids[4], ids[29]]])
    code, out, _ = verify()
    assert code == 1
    assert f"entries deleted after sealing: {ids[3]}-{ids[4]}, {ids[29]}" in out


@pytest.mark.django_db
def test_verify_reports_a_whole_deleted_block():
    ids = write(30)
    seal.seal_log(chunk_size=10)
    doomed = [i for i in ids if i // 10 == ids[15] // 10]
    tamper(f"DELETE FROM {LOG} WHERE id = ANY(%s)", [doomed])
    assert problems() == [("deleted", tuple(doomed))]


def _copy_entry(source_id, new_id):
    columns = [f.column for f in AuditLogEntry._meta.concrete_fields if f.column != "id"]
    names = ", ".join(f'"{c}"' for c in columns)
    run(f"INSERT INTO {LOG} (id, {names}) SELECT %s, {names} FROM {LOG} WHERE id = %s", [new_id, source_id])


@pytest.mark.django_db
def test_verify_reports_entries_inserted_with_old_ids():
    ids = write(5)
    with pytest.raises(RuntimeError), transaction.atomic():  # ids drawn and rolled back: a gap of 25
        write(25, number="gone")
        raise RuntimeError
    later = write(5, number="T")
    seal.seal_log(chunk_size=10)
    gap = list(range(ids[-1] + 1, later[-5]))
    assert len(gap) == 25
    _copy_entry(ids[0], gap[0])  # in a sealed block
    _copy_entry(ids[0], gap[12])  # in a block the seal had no entries in
    _copy_entry(ids[0], -7)  # below every sealed id
    assert problems() == [("inserted", (-7, gap[0], gap[12]))]


@pytest.mark.django_db
def test_seal_leaves_ids_the_sequence_never_handed_out_unsealed():
    ids = write(3)
    _copy_entry(ids[0], ids[-1] + 50)  # an explicit id, ahead of the sequence
    out = seal_now()
    assert f"ids {ids[0]} to {ids[-1]})" in out
    assert f"ids up to {ids[-1] + 50}, above the last its id sequence handed out" in out
    explicit = ids[-1] + 50
    later = [i for i in write(3, number="T") if i not in ids and i != explicit]  # the sequence's next ids
    assert len(later) == 3
    assert later[-1] < explicit
    assert seal.seal_log().last_id == later[-1]
    assert problems(full=True) == []


@pytest.mark.django_db
def test_verify_leaves_entries_after_the_last_seal_alone():
    write(5)
    seal.seal_log()
    more = write(3, number="T")
    tamper(f"UPDATE {LOG} SET changes = '{{}}' WHERE id = %s", [more[-1]])
    assert problems() == []


@pytest.mark.parametrize(
    ("damage", "kinds"),
    [
        (['UPDATE audit_log_seal SET "entry_count" = "entry_count" - 1 WHERE "id" = %(first)s'], ["seal"]),
        (['UPDATE audit_log_seal SET "sealed_at" = "sealed_at" - interval \'1 day\' WHERE "id" = %(first)s'], ["seal"]),
        # A forged hash: the seal no longer matches it, and the next seal no longer follows it.
        (['UPDATE audit_log_seal SET "hash" = sha256("hash") WHERE "id" = %(first)s'], ["chain", "seal"]),
        # A wider range: the first seal's last entry now looks inserted into the second.
        (
            ['UPDATE audit_log_seal SET "after_id" = "after_id" - 1 WHERE "id" = %(second)s'],
            ["chain", "inserted", "seal"],
        ),
        (
            [
                'DELETE FROM audit_log_sealchunk WHERE "seal_id" = %(second)s',
                'DELETE FROM audit_log_seal WHERE "id" = %(second)s',
            ],
            ["chain"],
        ),
        # Stored digests rewritten to match a forgery: the seal's hash gives it away.
        (
            ['UPDATE audit_log_sealchunk SET "digest" = sha256("digest") WHERE "seal_id" = %(first)s'],
            ["seal", "unlocalised"],
        ),
        (['UPDATE audit_log_sealchunk SET "digests" = sha256("digests") WHERE "seal_id" = %(first)s'], ["seal"]),
    ],
)
@pytest.mark.django_db
def test_verify_reports_a_tampered_seal_table(damage, kinds):
    write(4)
    first = seal.seal_log()
    write(4, number="T")
    second = seal.seal_log()
    write(4, number="U")
    third = seal.seal_log()
    for statement in damage:
        run(statement, {"first": first.seal_id, "second": second.seal_id, "third": third.seal_id})
    found = seal_verify.verify_log(full=True).problems
    assert sorted(p.kind for p in found) == sorted(kinds)
    code, _, _ = verify(full=True)
    assert code == 1


@pytest.mark.django_db
def test_verify_with_an_anchor_detects_a_rewritten_chain():
    write(4)
    original = seal.seal_log()
    assert verify(anchor=original.hash.hex())[0] == 0
    # Someone who can write both tables rewrites an entry and seals everything again.
    tamper(f"UPDATE {LOG} SET changes = '{{}}' WHERE id = %s", [original.first_id])
    Seal.objects.all().delete()
    seal.seal_log()
    assert verify()[0] == 0  # a plain chain rewritten from scratch is consistent...
    code, out, _ = verify(anchor=original.hash.hex())
    assert code == 1  # ...but not with the hash kept elsewhere
    assert f"No seal has the hash {original.hash.hex()}" in out


@pytest.mark.django_db
def test_verify_does_not_depend_on_the_session_settings():
    write(5)
    seal.seal_log()
    run("SET TimeZone = 'Asia/Tokyo'")
    run("SET extra_float_digits = 0")
    run("SET DateStyle = 'German'")  # the test's transaction, rolled back, takes these back
    assert problems(full=True) == []


@pytest.mark.django_db
def test_verify_ignores_columns_added_to_the_log_after_sealing_and_reports_dropped_ones():
    write(5)
    seal.seal_log()
    run(f"ALTER TABLE {LOG} ADD COLUMN region text DEFAULT 'eu'")
    assert problems(full=True) == []
    seal.seal_log()  # nothing new
    write(2, number="T")
    newer = seal.seal_log()
    assert "region" in Seal.objects.get(pk=newer.seal_id).columns
    run(f"ALTER TABLE {LOG} DROP COLUMN tenant")
    found = seal_verify.verify_log(full=True).problems
    assert {p.kind for p in found} == {"columns"}
    assert "tenant" in found[0].message


# --- incremental verification ------------------------------------------------------------


@pytest.mark.django_db
def test_verify_recomputes_only_seals_not_verified_yet():
    ids = write(10)
    first = seal.seal_log()
    assert seal_verify.verify_log().checked == [first.seal_id]
    assert Seal.objects.get(pk=first.seal_id).verified_at is not None
    tamper(f"UPDATE {LOG} SET changes = '{{}}' WHERE id = %s", [ids[2]])
    write(5, number="T")
    second = seal.seal_log()
    report = seal_verify.verify_log()
    assert (report.checked, report.problems) == ([second.seal_id], [])  # the old seal is not re-read
    assert problems(from_seal=first.seal_id) == [("changed", (ids[2],))]
    assert problems(full=True) == [("changed", (ids[2],))]
    assert Seal.objects.get(pk=second.seal_id).verified_at is not None


@pytest.mark.django_db
def test_verify_keeps_recomputing_a_seal_until_it_verifies():
    ids = write(10)
    made = seal.seal_log()
    tamper(f"DELETE FROM {LOG} WHERE id = %s", [ids[0]])
    assert problems() == [("deleted", (ids[0],))]
    assert Seal.objects.get(pk=made.seal_id).verified_at is None
    assert problems() == [("deleted", (ids[0],))]


@pytest.mark.django_db
def test_verify_no_record_leaves_seals_unverified():
    write(3)
    seal.seal_log()
    assert verify(no_record=True)[0] == 0
    assert Seal.objects.get().verified_at is None


@pytest.mark.django_db
def test_verify_without_seals_says_so():
    code, out, _ = verify()
    assert (code, out.strip()) == (0, "No seals yet: run audit_log_seal.")


# --- the key -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_seal_with_a_key_is_hmac_and_verifies_only_with_that_key(settings):
    settings.AUDIT_LOG_SEAL_KEY = "correct horse battery staple"
    write(5)
    made = seal.seal_log()
    row = Seal.objects.get(pk=made.seal_id)
    assert (row.algorithm, row.key_id) == ("hmac-sha256", seal.key_fingerprint(b"correct horse battery staple"))
    assert "correct horse" not in repr(list(Seal.objects.values()))  # the key is never stored
    assert verify()[0] == 0

    settings.AUDIT_LOG_SEAL_KEY = None
    code, _, error = verify(full=True)
    assert code == 2
    assert f"made with AUDIT_LOG_SEAL_KEY (key id {row.key_id}): set it" in error

    settings.AUDIT_LOG_SEAL_KEY = b"another key"
    code, _, error = verify(full=True)
    assert code == 2
    assert f"is not the key seal #{made.seal_id} was made with" in error


@pytest.mark.django_db
def test_verify_with_a_key_rejects_seals_forged_without_it(settings):
    settings.AUDIT_LOG_SEAL_KEY = "k" * 32
    ids = write(5)
    made = seal.seal_log()
    tamper(f"UPDATE {LOG} SET changes = '{{}}' WHERE id = %s", [ids[0]])
    # The forger rewrites the chunks to match and recomputes the seal's hash without the key.
    SealChunk.objects.all().delete()
    settings.AUDIT_LOG_SEAL_KEY = None
    Seal.objects.all().delete()
    forged = seal.seal_log()
    run('UPDATE audit_log_seal SET "algorithm" = %s, "key_id" = %s', ["hmac-sha256", seal.key_fingerprint(b"k" * 32)])
    settings.AUDIT_LOG_SEAL_KEY = "k" * 32
    assert [p.kind for p in seal_verify.verify_log(full=True).problems] == ["seal"]
    # Or leaves it plain: a chain that ends in a seal without the key proves nothing.
    run('UPDATE audit_log_seal SET "algorithm" = %s, "key_id" = %s', ["sha256", ""])
    found = seal_verify.verify_log(full=True).problems
    assert [(p.seal_id, p.kind) for p in found] == [(forged.seal_id, "unkeyed")]
    assert made.seal_id != forged.seal_id


@pytest.mark.django_db
def test_seal_with_a_new_key_anchors_the_plain_chain_under_it(settings):
    write(5)
    plain = seal.seal_log()
    settings.AUDIT_LOG_SEAL_KEY = "now with a key"
    assert [p.kind for p in seal_verify.verify_log().problems] == ["unkeyed"]
    anchor = seal.seal_log()  # nothing new, but the chain must end in a keyed seal
    assert anchor is not None
    assert (anchor.entry_count, anchor.first_id, anchor.after_id, anchor.last_id) == (
        0,
        None,
        plain.last_id,
        plain.last_id,
    )
    assert "re-anchored" not in seal_now()  # once is enough
    assert problems(full=True) == []


def test_conf_seal_key_takes_bytes_or_str(settings):
    settings.AUDIT_LOG_SEAL_KEY = "clé"
    assert conf.seal_key == "clé".encode()
    settings.AUDIT_LOG_SEAL_KEY = b"\x00\xff"
    assert conf.seal_key == b"\x00\xff"
    settings.AUDIT_LOG_SEAL_KEY = ""
    assert conf.seal_key is None
    del settings.AUDIT_LOG_SEAL_KEY
    assert conf.seal_key is None
    settings.AUDIT_LOG_SEAL_KEY = 1234
    with pytest.raises(ImproperlyConfigured, match="bytes or str, not int"):
        conf.seal_key  # noqa: B018


# --- several databases ------------------------------------------------------------------


@pytest.mark.django_db(databases=["default", "other"])
def test_seal_and_verify_use_the_database_they_are_given():
    with audit_context("test", using="other"):
        Invoice.objects.using("other").create(number="elsewhere")
    assert "1 entries" in seal_now(database="other")
    assert Seal.objects.using("other").count() == 1
    assert Seal.objects.count() == 0
    assert verify(database="other")[0] == 0
    assert seal.last_seal("other").entry_count == 1
    assert seal.last_seal() is None


# --- concurrency ------------------------------------------------------------------------


@pytest.fixture
def other_connection():
    """A second connection to the test database, outside autocommit (registered: signal handlers look it up)."""
    alias = "seal-writer"
    connections[alias] = type(connections["default"])(dict(connection.settings_dict), alias)
    other = connections[alias]
    other.ensure_connection()
    other.set_autocommit(False)
    try:
        yield other
    finally:
        other.close()
        del connections[alias]


def _write_uncommitted(other, number):
    """Write an invoice on ``other`` in a transaction left open; return its entry id."""
    with other.cursor() as cursor:
        cursor.execute(
            "INSERT INTO testapp_invoice (number, status, amount, notes) VALUES (%s, 'draft', 0, '') RETURNING id",
            [number],
        )
        (pk,) = cursor.fetchone()
        cursor.execute(f"SELECT id FROM {LOG} WHERE object_id = %s AND table_name = 'testapp_invoice'", [str(pk)])
        return cursor.fetchone()[0]


@pytest.mark.django_db(transaction=True)
def test_seal_leaves_entries_of_open_transactions_to_the_next_seal(other_connection):
    other = other_connection
    write(2)
    seal.seal_log()
    before = write(2, number="T")[-1]
    pending = _write_uncommitted(other, "late")
    after = write(2, number="U")[-1]  # committed, with a higher id
    assert before < pending < after
    held = seal.seal_log(wait=0)
    assert (held.last_id, held.entry_count, held.held_back) == (before, 2, True)
    other.commit()  # the entry appears below visible ids, but above the seal
    assert problems() == []
    rest = seal.seal_log(wait=0)
    assert (rest.first_id, rest.last_id, rest.entry_count, rest.held_back) == (pending, after, 3, False)
    assert problems(full=True) == []


@pytest.mark.django_db(transaction=True)
def test_seal_waits_for_a_transaction_that_commits_meanwhile(other_connection):
    other = other_connection
    write(2)
    pending = _write_uncommitted(other, "soon")
    last = write(2, number="T")[-1]
    committer = threading.Timer(0.3, other.connection.commit)  # the driver's connection: any thread may use it
    committer.start()
    started = time.monotonic()
    made = seal.seal_log(wait=10)
    committer.join()
    assert time.monotonic() - started < 5
    assert (made.last_id, made.held_back, made.entry_count) == (last, False, 5)
    assert pending <= last
    assert problems() == []


@pytest.mark.django_db(transaction=True)
def test_seal_of_a_first_entry_still_in_flight_waits_for_it(other_connection):
    other = other_connection
    pending = _write_uncommitted(other, "first")
    write(2, number="T")
    assert seal.seal_log(wait=0) is None  # nothing is settled below the first visible id
    other.commit()
    made = seal.seal_log(wait=0)
    assert (made.first_id, made.entry_count) == (pending, 3)
    assert problems() == []


@pytest.mark.django_db(transaction=True)
def test_seal_never_blocks_writers(monkeypatch, other_connection):
    write(20)
    other = other_connection
    seen = {}
    original = seal.seal_hash

    def write_while_sealing(message, key):
        # The seal's transaction is open and has read and digested the log.
        with other.cursor() as cursor:
            cursor.execute("SET lock_timeout = '2s'")
            cursor.execute("INSERT INTO testapp_invoice (number, status, amount, notes) VALUES ('w', 'draft', 0, '')")
            cursor.execute("SELECT mode FROM pg_locks WHERE pid = %s AND relation = %s::regclass", [seen["pid"], LOG])
            seen["modes"] = {mode for (mode,) in cursor.fetchall()}
        other.commit()
        return original(message, key)

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        seen["pid"] = cursor.fetchone()[0]
    monkeypatch.setattr(seal, "seal_hash", write_while_sealing)
    made = seal.seal_log()
    assert seen["modes"] == {"AccessShareLock"}
    assert made.entry_count == 20
    assert AuditLogEntry.objects.count() == 21


# --- retention -----------------------------------------------------------------------------


def _age(ids, days):
    tamper(f"UPDATE {LOG} SET at = at - make_interval(days => %s) WHERE id = ANY(%s)", [days, ids])


@pytest.mark.django_db
def test_verify_accepts_entries_removed_by_retention_and_says_so():
    ids = write(10)
    _age(ids[:5], 400)
    seal.seal_log()
    call_command("audit_log_retention", keep="365d", stdout=io.StringIO())
    assert not AuditLogEntry.objects.filter(id__in=ids[:5]).exists()
    report = seal_verify.verify_log(full=True)
    assert report.problems == []
    assert [(n.kind, n.ids) for n in report.notices] == [("retained", tuple(ids[:5]))]
    code, out, _ = verify(full=True)
    assert code == 0
    assert f"entries removed by retention: {ids[0]}-{ids[4]} (recorded in entries " in out


@pytest.mark.django_db
def test_verify_rejects_a_chosen_deletion_labelled_retention():
    ids = write(10)
    _age(ids[:5], 400)
    seal.seal_log()
    # Not a prefix: older entries than the one removed are still there.
    with audit_context("retention", context={"before": "2999-01-01T00:00:00+00:00"}):
        tamper(f"DELETE FROM {LOG} WHERE id = %s", [ids[7]])
    assert problems(full=True) == [("deleted", (ids[7],))]
    # Nor is a deletion the record says removed newer entries than its cutoff.
    with audit_context("retention", context={"before": "2000-01-01T00:00:00+00:00"}):
        tamper(f"DELETE FROM {LOG} WHERE id = %s", [ids[0]])
    assert problems(full=True) == [("deleted", (ids[0], ids[7]))]


def test_format_ids_folds_runs_into_ranges():
    assert seal_verify.format_ids([9, 3, 4, 5, 12, 7]) == "3-5, 7, 9, 12"
    assert seal_verify.format_ids(range(10), limit=1) == "0-9"
    assert seal_verify.format_ids([1, 3, 5, 6], limit=2) == "1, 3, and 2 more"


def test_block_range_matches_sql_integer_division():
    assert seal_verify.block_range(3, 10) == (30, 39)
    assert seal_verify.block_range(0, 10) == (-9, 9)
    assert seal_verify.block_range(-2, 10) == (-29, -20)
