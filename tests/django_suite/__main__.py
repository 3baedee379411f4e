"""``python -m tests.django_suite``: Django's own tests, stock and with every table audited.

Examples::

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres python -m tests.django_suite
    python -m tests.django_suite --modules schema migrations --parallel 2
    python -m tests.django_suite --modules schema -k test_rename

Exits 1 when a test's outcome differs between the runs, or when the audited
run shows no trigger at work (then the comparison would prove nothing).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import django

from tests.django_suite import ENGINES, results, sdist
from tools.postgres import database_settings

REPO = Path(__file__).resolve().parents[2]
CACHE = REPO / ".django-suite"

#: The modules of Django's tests that change schemas or write rows in most ways.
DEFAULT_MODULES = (
    "schema",
    "migrations",
    "backends",
    "model_fields",
    "bulk_create",
    "update",
    "delete",
    "custom_pk",
    "postgres_tests",
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Read the command line."""
    parser = argparse.ArgumentParser(
        prog="python -m tests.django_suite",
        description="Run Django's own test modules with the stock PostgreSQL backend and with every table "
        "audited, and print the tests whose outcome differs.",
    )
    parser.add_argument(
        "--modules",
        nargs="+",
        default=list(DEFAULT_MODULES),
        metavar="LABEL",
        help="test labels for Django's runtests.py (default: %(default)s)",
    )
    parser.add_argument(
        "--parallel", metavar="N", help="processes per run, passed to runtests.py (default: one per core)"
    )
    parser.add_argument(
        "-k", dest="patterns", action="append", default=[], help="only tests matching this pattern (repeatable)"
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the audited run's test databases (test_<NAME>*), triggers and log included, for a look",
    )
    return parser.parse_args(argv)


def duration(seconds: float) -> str:
    """Format a run time as ``4 min 05 s``."""
    minutes, seconds = divmod(round(seconds), 60)
    return f"{minutes} min {seconds:02d} s" if minutes else f"{seconds} s"


def run(backend: str, tests_dir: Path, args: argparse.Namespace, env: dict[str, str]) -> dict[str, Any]:
    """Run Django's ``runtests.py`` once with ``backend`` and return its results file's data.

    Args:
        backend: ``"stock"`` or ``"audited"`` (see ``ENGINES``).
        tests_dir: Django's extracted ``tests`` folder.
        args: The command line.
        env: The environment for runtests (the database is in it).

    Returns:
        ``tests``, ``databases`` (see ``runner.SuiteRunner``), ``seconds``,
        ``returncode`` and ``log``; ``tests`` is empty when runtests died
        before writing its results.
    """
    log = tests_dir.parent / f"{backend}.log"
    results_file = tests_dir.parent / f"{backend}.json"
    results_file.unlink(missing_ok=True)
    command = [sys.executable, "runtests.py", "--settings=tests.django_suite.settings", "--noinput", "--verbosity=2"]
    if args.parallel:
        command.append(f"--parallel={args.parallel}")
    if args.keep and backend == "audited":
        command.append("--keepdb")
    command += [f"-k={pattern}" for pattern in args.patterns]
    # The log app is a label too: runtests installs only what the labels name.
    command += [*args.modules, sdist.APP_LABEL]
    print(f"[{backend}] {ENGINES[backend]}: running, output in {log.relative_to(REPO)}", flush=True)
    started = time.monotonic()
    with log.open("w") as output:
        completed = subprocess.run(
            command,
            cwd=tests_dir,
            env={**env, "DJANGO_SUITE_BACKEND": backend, "DJANGO_SUITE_RESULTS": str(results_file)},
            stdout=output,
            stderr=subprocess.STDOUT,
            check=False,
        )
    seconds = time.monotonic() - started
    data: dict[str, Any] = {"tests": {}, "databases": []}
    if results_file.exists():
        data = json.loads(results_file.read_text())
    data.update(seconds=seconds, returncode=completed.returncode, log=log)
    print(f"[{backend}] {results.totals(data['tests'])}; {duration(seconds)}, exit {completed.returncode}", flush=True)
    return data


def main(argv: list[str] | None = None) -> int:
    """Run the comparison; return the exit status (0: no difference, 1: differences or no trigger fired).

    Args:
        argv: The arguments (default: ``sys.argv[1:]``).

    Returns:
        The exit status.
    """
    args = parse_args(argv)
    if sys.version_info[:3] == (3, 12, 1) and args.parallel != "1":
        # Python 3.12.1 does not call startTest() for skipped tests (CPython
        # gh-113267, fixed in 3.12.2), so Django's parallel runner files every
        # result after a skip under the wrong test.
        print("Python 3.12.1 mislabels parallel test results (CPython gh-113267): running with --parallel 1")
        args.parallel = "1"
    version = django.get_version()
    tests_dir = sdist.extract_tests(sdist.download(version, CACHE), CACHE)
    # DATABASE_URL as the project's own tests read it, else an embedded
    # PostgreSQL that lives as long as this process.
    database = {key: value for key, value in database_settings().items() if key != "ENGINE"}
    requirements = sdist.requirements_path(CACHE)
    python_path = [str(REPO), str(requirements) if requirements else "", os.environ.get("PYTHONPATH", "")]
    env = {
        **os.environ,
        "DJANGO_SUITE_DATABASE": json.dumps(database),
        "PYTHONPATH": os.pathsep.join(filter(None, python_path)),
    }
    print(f"Django {version} tests from {tests_dir.relative_to(REPO)}, Python {sys.version.split()[0]}")
    host = f"{database.get('HOST') or 'localhost'}:{database.get('PORT') or 5432}"
    print(f"Database server {host}, test databases test_{database['NAME']}*")
    print(f"Labels: {' '.join(args.modules)}", flush=True)

    stock = run("stock", tests_dir, args, env)
    audited = run("audited", tests_dir, args, env)

    failed = False
    for name, data in (("stock", stock), ("audited", audited)):
        print(f"[{name}] {results.database_summary(data['databases'])[0]}")
        if not data["tests"]:
            print(f"[{name}] no results: runtests died early, see {data['log']}")
            failed = True
    _, triggers, numbered = results.database_summary(audited["databases"])
    if not triggers or not numbered:
        print("[audited] no audit trigger installed or fired: the comparison proves nothing")
        failed = True
    if results.database_summary(stock["databases"])[1]:
        print("[stock] audit triggers in the stock run: the backends got mixed up")
        failed = True

    differences = results.compare(stock["tests"], audited["tests"])
    print(f"\n{len(differences)} tests differ (stock -> audited)", end="")
    print(":" if differences else ".")
    for line in results.report(differences):
        print(line)
    print(f"\nFull tracebacks: {stock['log'].with_suffix('.json')} and {audited['log'].with_suffix('.json')}")
    return 1 if differences or failed else 0


if __name__ == "__main__":
    sys.exit(main())
