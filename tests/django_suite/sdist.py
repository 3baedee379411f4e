"""Fetch Django's test suite for the installed Django, and what running it needs."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

#: The suite's log-models app, copied into Django's tests folder under its own name.
APP_SOURCE = Path(__file__).with_name("audit_log_suite")
APP_LABEL = APP_SOURCE.name


def download(version: str, cache: Path) -> Path:
    """Return the sdist of Django ``version``, downloading it from PyPI with pip on first use.

    Only a published release has its tests on PyPI: a development version
    fails here.

    Args:
        version: The Django version (``django.get_version()``).
        cache: The folder to keep it in.

    Returns:
        The path of the ``.tar.gz``.
    """
    folder = cache / "sdist"
    existing = sorted(folder.glob(f"[Dd]jango-{version}.tar.gz"))
    if existing:
        return existing[0]
    folder.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", "download", f"django=={version}"]
    command += ["--no-binary", ":all:", "--no-deps", "--quiet", "-d", str(folder)]
    subprocess.run(command, check=True)
    found = sorted(folder.glob(f"[Dd]jango-{version}.tar.gz"))
    if not found:
        raise RuntimeError(f"pip download left no Django {version} sdist in {folder}")
    return found[0]


def extract_tests(sdist: Path, cache: Path) -> Path:
    """Extract the sdist's ``tests/`` folder (once) and add the log-models app to it.

    The app is copied afresh on every call, so the folder always runs the
    app as it is in this checkout.

    Args:
        sdist: The Django sdist.
        cache: Where to extract it.

    Returns:
        The ``tests`` folder, which holds ``runtests.py``.
    """
    root = sdist.name.removesuffix(".tar.gz")
    tests = cache / root / "tests"
    done = tests / ".extracted"
    if not done.exists():
        shutil.rmtree(cache / root, ignore_errors=True)
        prefix = f"{root}/tests/"
        with tarfile.open(sdist) as archive:
            members = [member for member in archive.getmembers() if member.name.startswith(prefix)]
            # The "data" filter refuses links and paths that leave the folder.
            archive.extractall(cache, members=members, filter="data")
        done.touch()
    app = tests / APP_LABEL
    shutil.rmtree(app, ignore_errors=True)
    shutil.copytree(APP_SOURCE, app, ignore=shutil.ignore_patterns("__pycache__"))
    return tests


def _importable(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def requirements_path(cache: Path) -> Path | None:
    """Install what Django's test suite needs and this environment lacks into the cache; return that folder.

    ``tblib``: Django's parallel runner needs it to send a failing test's
    traceback from a worker to the main process; without it the first
    failure stops the whole run. ``psycopg-pool``, with psycopg 3: without
    it Django's connection-pool tests fail in both runs and test nothing.
    Nothing is installed into the environment itself.

    Args:
        cache: The cache folder.

    Returns:
        The folder to put on ``PYTHONPATH``, or None when nothing is missing.
    """
    wanted = {"tblib": "tblib"}
    if _importable("psycopg"):
        wanted["psycopg_pool"] = "psycopg-pool"
    missing = {module: package for module, package in wanted.items() if not _importable(module)}
    if not missing:
        return None
    target = cache / f"site-packages-py{sys.version_info.major}.{sys.version_info.minor}"
    if absent := [package for module, package in missing.items() if not (target / module).exists()]:
        command = [sys.executable, "-m", "pip", "install", "--quiet", "--target", str(target), *absent]
        subprocess.run(command, check=True)
    return target
