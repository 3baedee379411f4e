"""Headless Chromium for the browser tests: Debian's ``chromium`` package, driven by Playwright.

Playwright's own browser download does not work here, so tests launch the
system binary through ``executable_path``. Set ``CHROMIUM`` to use another one.
"""

import os
import shutil
from pathlib import Path

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"

#: No sandbox (root in CI), no GPU, and no background networking: the
#: machine's closed network refuses Chromium's own connections.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

MISSING = "Chromium is not installed: apt-get install -y chromium (or set CHROMIUM to a binary)"


def chromium() -> str | None:
    """Return the Chromium binary to use, or None if there is none."""
    for candidate in (os.environ.get("CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium")):
        if candidate and Path(candidate).is_file():
            return candidate
    return None
