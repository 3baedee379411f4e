"""Behind PgBouncer in transaction pooling, contexts stay with their own changes, with no setting.

Runs a real PgBouncer (Debian's ``pgbouncer`` package; skipped when it is not
installed) with one server connection per pool, so two Django connections
take turns on the same PostgreSQL session: exactly what would make any
session-level context state leak from one client into another. The context
travels inside each write's own transaction, so there is none.
"""

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from django.db import connection, connections, transaction

from audit_log.context import audit_context
from audit_log.db.backend.base import DatabaseWrapper
from tests.testapp.models import AuditLogEntry, Invoice

PGBOUNCER = shutil.which("pgbouncer") or ("/usr/sbin/pgbouncer" if Path("/usr/sbin/pgbouncer").exists() else None)

pytestmark = [
    pytest.mark.skipif(PGBOUNCER is None, reason="PgBouncer is not installed (apt-get install pgbouncer)"),
    pytest.mark.django_db(transaction=True),
]


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def pgbouncer(db):
    # Not tmp_path: PgBouncer drops root privileges and must reach its files.
    tmp_path = Path(tempfile.mkdtemp(prefix="audit-log-pgbouncer-"))
    tmp_path.chmod(0o777)
    settings = connection.settings_dict
    host = settings["HOST"] or "127.0.0.1"
    server = f"host={host} port={settings['PORT'] or 5432} dbname={settings['NAME']}"
    port = free_port()
    (tmp_path / "users.txt").write_text(f'"{settings["USER"]}" ""\n')
    (tmp_path / "pgbouncer.ini").write_text(
        f"""[databases]
pool = {server}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {tmp_path / "users.txt"}
pool_mode = transaction
default_pool_size = 1
max_client_conn = 20
server_reset_query =
ignore_startup_parameters = extra_float_digits,options
logfile = {tmp_path / "pgbouncer.log"}
pidfile = {tmp_path / "pgbouncer.pid"}
"""
    )
    command = [PGBOUNCER, str(tmp_path / "pgbouncer.ini")]
    if os.geteuid() == 0:
        # PgBouncer refuses to run as root. An embedded server listens on a
        # socket only its own user may reach: run as that user then.
        user = pwd.getpwuid(Path(host).stat().st_uid).pw_name if host.startswith("/") else "postgres"
        command[1:1] = ["-u", user]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    for _ in range(50):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    else:
        process.kill()
        pytest.fail(f"PgBouncer did not start: {process.stderr.read().decode()}")
    aliases = []

    def client(alias, pool):
        # Registered as a dynamic connection (not in DATABASES): the test
        # framework has no test database to create for it.
        pooled = {**settings, "HOST": "127.0.0.1", "PORT": str(port), "NAME": pool}
        pooled["DISABLE_SERVER_SIDE_CURSORS"] = True
        connections[alias] = DatabaseWrapper(pooled, alias)
        aliases.append(alias)
        return alias

    yield client
    for alias in aliases:
        connections[alias].close()
        del connections[alias]
    process.terminate()
    process.wait(timeout=10)
    shutil.rmtree(tmp_path, ignore_errors=True)


def run_two_clients(first, second, user):
    """``first`` writes in a context, then ``second`` writes with none, then ``first`` again."""
    with audit_context("first-client", performed_by=user, using=first):
        Invoice.objects.using(first).create(number="first-1")
        Invoice.objects.using(second).create(number="second")
        with transaction.atomic(using=first):
            Invoice.objects.using(first).create(number="first-2")
            Invoice.objects.using(first).filter(number="first-2").update(notes="in a transaction")
        Invoice.objects.using(second).create(number="second-2")
    return [(entry.changes.get("number", entry.action), entry.context_type) for entry in AuditLogEntry.objects.all()]


def test_transaction_pooling_keeps_each_context_with_its_own_changes(pgbouncer, user):
    first, second = pgbouncer("first", "pool"), pgbouncer("second", "pool")
    assert sorted(run_two_clients(first, second, user)) == sorted(
        [
            ("first-1", "first-client"),
            ("second", "unknown"),
            ("first-2", "first-client"),
            ("UPDATE", "first-client"),
            ("second-2", "unknown"),
        ]
    )
    with connections[second].cursor() as cursor:  # the one server session both clients shared
        cursor.execute("SELECT current_setting('audit_log.context', true)")
        assert cursor.fetchone()[0] in {"", None}
