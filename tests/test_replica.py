"""Reads from a real streaming replica: a private primary and its hot standby (see tests/replica.py).

One Django process of its own (``python -m tests.replica``) runs against the
pair with ``AUDIT_LOG_READ_DATABASE = "replica"``: it writes through the admin
and the request middleware, waits for replay, pauses replay to make the
replica lag, reverts, resumes, and reports what each step read where. Skipped,
with the reason, where the pair cannot start.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.replica import Unavailable, start_pair

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def facts():
    try:
        pair = start_pair()
    except Unavailable as reason:
        pytest.skip(f"no streaming replica for this test: {reason}")
    try:
        env = {**os.environ, "DATABASE_URL": f"postgres://postgres@127.0.0.1:{pair.primary_port}/postgres"}
        env.pop("DJANGO_SETTINGS_MODULE", None)  # the scenario configures its own settings
        done = subprocess.run(  # our own interpreter and module
            [sys.executable, "-m", "tests.replica", str(pair.primary_port), str(pair.replica_port)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        pair.stop()
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_replica_pair_is_a_primary_and_a_hot_standby(facts):
    assert facts["primary_in_recovery"] is False
    assert facts["replica_in_recovery"] is True


def test_replica_history_tab_reads_the_replica(facts):
    assert facts["history"]["status"] == 200
    assert facts["history"]["shows_bravo"]
    assert facts["history"]["replica_log_reads"] >= 1
    assert facts["history"]["primary_log_reads"] == 0
    assert facts["context_types"] == ["http-request"]  # written through the real middleware


def test_replica_lagging_history_lacks_the_newest_entry_the_primary_has(facts):
    assert not facts["lagging_history"]["shows_charlie"]
    assert facts["lagging_history"]["primary_log_reads"] == 0
    assert facts["lagging_counts"] == {"audit_logs": 2, "audit_logs_on_primary": 3}


def test_replica_admin_revert_reads_the_primary(facts):
    revert = facts["admin_revert"]
    assert revert["page_status"] == 200
    assert revert["post_status"] == 302
    assert revert["page_replica_log_reads"] == 0
    assert revert["post_replica_log_reads"] == 0
    assert revert["entry_page_status"] == 200  # the new entry, not replayed yet: read from the primary
    assert revert["notes_after"] == "bravo"


def test_replica_revert_of_an_entry_read_from_the_replica_reads_the_primary(facts):
    revert = facts["api_revert"]
    assert revert["entry_from"] == "replica"
    assert revert["replica_log_reads"] == 0
    assert revert["wrote_on"] == "default"
    assert revert["notes_after"] == "alpha"


def test_replica_catches_up_after_replay_resumes(facts):
    assert facts["caught_up_history_shows_charlie"]
    assert facts["caught_up_counts"] == 5  # three saves, the admin's revert, the API's revert
