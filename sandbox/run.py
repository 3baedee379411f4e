"""Start the sandbox: ``python -m sandbox`` (what ``make demo`` runs after installing).

It uses the PostgreSQL named by ``DATABASE_URL`` when that is set; otherwise it
starts an embedded PostgreSQL (from PyPI) whose data stays in ``.pgdata/``
between runs. Then it creates the database if it does not exist, migrates,
creates the demo history on the first start, makes sure the demo superuser
can log in, prints the URL and the login, and serves the admin with
``runserver``. Ctrl-C (SIGINT) or SIGTERM stops the server and then the
embedded PostgreSQL.

Options: ``--port`` (or ``PORT``), ``--host``, ``--noreload``, ``--entries N``
(generate a large history too), ``--reset`` (drop the database and start over),
``--data-dir`` (or ``SANDBOX_PGDATA``) for the embedded server's data.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import warnings
from pathlib import Path
from types import FrameType
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent


class Shutdown(BaseException):
    """SIGTERM (or SIGHUP) arrived: stop like on Ctrl-C."""


class SetupError(Exception):
    """The sandbox cannot start; the message says why and what to do."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m sandbox",
        description="Set up and serve the sandbox admin (what `make demo` runs).",
        epilog="Uses DATABASE_URL when it is set, else an embedded PostgreSQL. Ctrl-C stops everything.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to serve on (default 127.0.0.1)")
    parser.add_argument(
        "--port", type=int, default=int(os.environ.get("PORT") or 8000), help="port (default $PORT or 8000)"
    )
    parser.add_argument("--noreload", action="store_true", help="do not restart the server when code changes")
    parser.add_argument("--entries", type=int, default=0, metavar="N", help="also generate N more log entries")
    parser.add_argument("--reset", action="store_true", help="drop and recreate the database first")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(os.environ.get("SANDBOX_PGDATA") or ROOT / ".pgdata"),
        help="the embedded PostgreSQL's data folder, without DATABASE_URL (default .pgdata/)",
    )
    return parser.parse_args(argv)


def _raise_shutdown(signum: int, frame: FrameType | None) -> None:
    raise Shutdown


def main(argv: list[str] | None = None) -> int:
    """Set up and serve the sandbox until Ctrl-C or SIGTERM; return the exit status."""
    args = parse_args(argv)
    # Also when started with SIGINT ignored (a background job of a script),
    # which runserver would inherit: Ctrl-C / kill -INT must stop the sandbox.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _raise_shutdown)
    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, _raise_shutdown)
    server: subprocess.Popen[bytes] | None = None
    embedded = False
    try:
        where, embedded = use_database(args.data_dir)
        prepare(reset=args.reset, entries=args.entries)
        banner(args.host, args.port, where, embedded=embedded)
        server = serve(args.host, args.port, noreload=args.noreload)
        return server.wait()
    except (KeyboardInterrupt, Shutdown):
        print("\nStopping the sandbox ...", flush=True)
        return 0
    except SetupError as error:
        print(f"The sandbox cannot start: {error}", file=sys.stderr, flush=True)
        return 1
    finally:
        # A second Ctrl-C must not cut the clean-up short.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if server is not None:
            stop(server)
        if embedded:
            from tools.postgres import stop_embedded

            print("Stopping the embedded PostgreSQL ...", flush=True)
            stop_embedded(args.data_dir.resolve())


def use_database(data_dir: Path) -> tuple[str, bool]:
    """Point ``DATABASE_URL`` at the database to use, starting the embedded PostgreSQL if need be.

    The server and everything the sandbox runs (this process's Django, the
    runserver process) then share one server that this process owns.

    Returns:
        A description of the database (without any password), and whether
        it is the embedded server.

    Raises:
        SetupError: If there is no ``DATABASE_URL`` and no embedded PostgreSQL.
    """
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sandbox.settings")
    url = os.environ.get("DATABASE_URL")
    if url:
        import dj_database_url

        settings = dj_database_url.parse(url)
        return f"DATABASE_URL (database {settings['NAME']!r} on {settings['HOST'] or 'localhost'})", False
    # platformdirs (used by pgserver) warns when XDG_RUNTIME_DIR is unset, as in
    # containers; its fallback folder is fine.
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
    from tools.postgres import start_embedded

    data_dir = data_dir.resolve()
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    print(f"Starting the embedded PostgreSQL in {data_dir} ...", flush=True)
    try:
        settings = start_embedded(data_dir)
    except RuntimeError as error:
        raise SetupError(error) from error
    host = quote(settings["HOST"], safe="")  # a socket folder is written percent-encoded in the host part
    port = f":{settings['PORT']}" if settings["PORT"] else ""
    os.environ["DATABASE_URL"] = f"postgres://{settings['USER']}@{host}{port}/sandbox"
    return f"embedded PostgreSQL in {display_path(data_dir)} (database 'sandbox')", True


def display_path(path: Path) -> str:
    try:
        return f"{path.relative_to(Path.cwd())}/"
    except ValueError:
        return str(path)


def prepare(*, reset: bool, entries: int) -> None:
    """Create the database if need be, migrate, seed, and make sure the demo superuser can log in."""
    import django

    django.setup()
    from django.core.management import CommandError, call_command
    from django.db import OperationalError, connections

    from sandbox.shop.demo import ensure_superuser

    try:
        create_database(reset=reset)
    except OperationalError as error:
        raise SetupError(f"cannot connect to PostgreSQL: {error}") from error
    call_command("migrate", interactive=False, verbosity=1)
    try:
        # Only a count the user asked for: the log shows the command's options (the import's context).
        call_command("seed_demo", entries=entries or None)
    except CommandError as error:
        raise SetupError(error) from error
    ensure_superuser()
    connections.close_all()  # the server process opens its own


def create_database(*, reset: bool) -> None:
    """Create the configured database unless it exists; with ``reset``, drop it first."""
    from django.db import connection

    from audit_log.sql import quote_ident

    name = connection.settings_dict["NAME"]
    # _nodb_cursor: Django's own way (used when creating test databases) to
    # connect to the server's maintenance database, for CREATE DATABASE.
    with connection._nodb_cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
        exists = cursor.fetchone() is not None
        if exists and reset:
            print(f"Dropping the database {name!r} ...", flush=True)
            cursor.execute(f"DROP DATABASE {quote_ident(name)} WITH (FORCE)")
            exists = False
        if not exists:
            print(f"Creating the database {name!r} ...", flush=True)
            cursor.execute(f"CREATE DATABASE {quote_ident(name)}")


def banner(host: str, port: int, where: str, *, embedded: bool) -> None:
    from sandbox.shop.demo import ADMIN_USERNAME, DEMO_PASSWORD, STAFF

    shown = f"[{host}]" if ":" in host else host
    staff = ", ".join(name for name in STAFF if name != "dave")
    lines = [
        f"The sandbox admin: http://{shown}:{port}/admin/",
        f"Log in as {ADMIN_USERNAME} / {DEMO_PASSWORD}  (staff users {staff} have the same password)",
        f"Database: {where}",
        "Stop with Ctrl-C" + (" (stops PostgreSQL too)" if embedded else ""),
    ]
    width = max(map(len, lines)) + 4
    print("\n" + "=" * width, *(f"  {line}" for line in lines), "=" * width + "\n", sep="\n", flush=True)


def serve(host: str, port: int, *, noreload: bool) -> subprocess.Popen[bytes]:
    """Start ``manage.py runserver`` in a process group of its own, so it can be stopped as a whole."""
    command = [sys.executable, str(ROOT / "sandbox" / "manage.py"), "runserver", f"{host}:{port}"]
    if noreload:
        command.append("--noreload")
    if os.name == "posix":
        return subprocess.Popen(command, start_new_session=True)
    return subprocess.Popen(command, creationflags=subprocess.CREATE_NEW_PROCESS_GROUP)  # type: ignore[attr-defined]  # Windows only


def stop(server: subprocess.Popen[bytes], timeout: float = 5) -> None:
    """Stop runserver and its autoreloader's child: SIGINT (Ctrl-C) to the group, then SIGTERM, then SIGKILL."""
    posix = os.name == "posix"
    signals = [signal.SIGINT, signal.SIGTERM] if posix else [signal.CTRL_BREAK_EVENT]  # type: ignore[attr-defined]
    for signum in signals:
        if server.poll() is not None:
            break
        try:
            if posix:
                os.killpg(server.pid, signum)
            else:
                server.send_signal(signum)
            server.wait(timeout)
        except ProcessLookupError:
            break
        except subprocess.TimeoutExpired:
            continue
    if server.poll() is None:
        server.kill()
        server.wait()
    if os.name == "posix":
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(server.pid, signal.SIGKILL)  # anything of the group still running
