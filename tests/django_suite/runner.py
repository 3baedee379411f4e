"""The test runner ``runtests.py`` uses under ``tests.django_suite.settings``.

It is Django's ``DiscoverRunner`` that also writes, to the JSON file named by
``DJANGO_SUITE_RESULTS``, every test's outcome and, just before the test
databases are dropped, what the audit triggers did in each of them. Outcomes
are recorded in the main process: with ``--parallel`` the workers' results are
replayed into it, so one file holds the whole run.
"""

from __future__ import annotations

import json
import os
import unittest
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import django
from django.db.backends.base.base import BaseDatabaseWrapper
from django.test.runner import DiscoverRunner

# Worst first: a test that reports twice (a failed subtest, then an error in
# tearDown) keeps the worse outcome.
SEVERITY = ("ERROR", "FAIL", "unexpected success", "ok", "expected failure", "skipped")

# What ends up in the file for each failure: its start (the traceback and the
# exception) and its end; a failed assertNumQueries lists every query between.
DETAIL_HEAD, DETAIL_TAIL = 6000, 1000

STATS_SQL = r"""
SELECT
  (SELECT count(*) FROM pg_trigger WHERE NOT tgisinternal AND tgname LIKE 'audit\_log\_%%'),
  (SELECT count(DISTINCT tgrelid) FROM pg_trigger WHERE NOT tgisinternal AND tgname LIKE 'audit\_log\_%%'),
  (SELECT count(*) FROM {log_table}),
  coalesce(pg_sequence_last_value(pg_get_serial_sequence(%s, 'id')::regclass), 0)
"""


class RecordingResult(unittest.TextTestResult):
    """A text result that also keeps ``{test id: {"outcome", "detail"}}``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.outcomes: dict[str, dict[str, str]] = {}

    def _record(self, test: unittest.TestCase, outcome: str, detail: str = "") -> None:
        test_id = test.id()
        previous = self.outcomes.get(test_id)
        if previous and SEVERITY.index(previous["outcome"]) <= SEVERITY.index(outcome):
            return
        if len(detail) > DETAIL_HEAD + DETAIL_TAIL:
            detail = f"{detail[:DETAIL_HEAD]}\n[...]\n{detail[-DETAIL_TAIL:]}"
        self.outcomes[test_id] = {"outcome": outcome, "detail": detail}

    def _text(self, test: unittest.TestCase, err: Any) -> str:
        return self._exc_info_to_string(err, test)

    def addSuccess(self, test: unittest.TestCase) -> None:  # noqa: N802 - unittest's name
        super().addSuccess(test)
        self._record(test, "ok")

    def addError(self, test: unittest.TestCase, err: Any) -> None:  # noqa: N802
        super().addError(test, err)
        self._record(test, "ERROR", self._text(test, err))

    def addFailure(self, test: unittest.TestCase, err: Any) -> None:  # noqa: N802
        super().addFailure(test, err)
        self._record(test, "FAIL", self._text(test, err))

    def addSubTest(self, test: unittest.TestCase, subtest: unittest.TestCase, err: Any) -> None:  # noqa: N802
        super().addSubTest(test, subtest, err)
        if err is not None:
            outcome = "FAIL" if issubclass(err[0], test.failureException) else "ERROR"
            self._record(test, outcome, f"{subtest}\n{self._text(test, err)}")

    def addSkip(self, test: unittest.TestCase, reason: str) -> None:  # noqa: N802
        super().addSkip(test, reason)
        self._record(test, "skipped", reason)

    def addExpectedFailure(self, test: unittest.TestCase, err: Any) -> None:  # noqa: N802
        super().addExpectedFailure(test, err)
        self._record(test, "expected failure")

    def addUnexpectedSuccess(self, test: unittest.TestCase) -> None:  # noqa: N802
        super().addUnexpectedSuccess(test)
        self._record(test, "unexpected success")


def trigger_stats(connection: BaseDatabaseWrapper) -> dict[str, Any]:
    """Count the audit triggers in ``connection``'s database and the log entries they wrote.

    Args:
        connection: A connection to one test database (not yet dropped).

    Returns:
        ``triggers`` and ``tables`` (audit triggers, and the tables that have
        them, at the end of the run), ``rows`` (log entries left) and
        ``numbered`` (log entries ever numbered by the log table's sequence:
        also those of rolled-back transactions, which is where ``TestCase``
        puts every write).
    """
    from audit_log.loading import get_log_entry_model

    log_table = get_log_entry_model()._meta.db_table
    quoted = connection.ops.quote_name(log_table)
    with connection.cursor() as cursor:
        cursor.execute(STATS_SQL.format(log_table=quoted), [quoted])
        triggers, tables, rows, numbered = cursor.fetchone()
    return {"triggers": triggers, "tables": tables, "rows": rows, "numbered": numbered}


class SuiteRunner(DiscoverRunner):
    """Django's runner, recording outcomes and trigger counts for ``python -m tests.django_suite``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.outcomes: dict[str, dict[str, str]] = {}
        self.databases: list[dict[str, Any]] = []

    def get_resultclass(self) -> type[unittest.TextTestResult]:
        """Return the recording result (``--debug-sql`` and ``--pdb`` are not used by the command)."""
        return RecordingResult

    def run_suite(self, suite: unittest.TestSuite, **kwargs: Any) -> unittest.TestResult:
        """Run the tests and keep their outcomes."""
        result = super().run_suite(suite, **kwargs)
        self.outcomes = getattr(result, "outcomes", {})
        return result

    def _test_databases(self, old_config: list[Any]) -> Iterator[tuple[str, BaseDatabaseWrapper]]:
        for connection, *_ in old_config:
            names = [connection.settings_dict]
            if self.parallel > 1:
                names += [connection.creation.get_test_db_clone_settings(str(n)) for n in range(1, self.parallel + 1)]
            for settings_dict in names:
                yield settings_dict["NAME"], type(connection)({**connection.settings_dict, **settings_dict})

    def teardown_databases(self, old_config: list[Any], **kwargs: Any) -> None:
        """Count what the triggers did in every test database (and clone), then drop them."""
        for name, connection in self._test_databases(old_config):
            try:
                stats = trigger_stats(connection)
            except Exception as error:  # noqa: BLE001 - a database that failed to set up is reported, not fatal
                stats = {"error": f"{type(error).__name__}: {error}"}
            finally:
                connection.close()
            self.databases.append({"name": name, **stats})
        super().teardown_databases(old_config, **kwargs)

    def run_tests(self, test_labels: list[str], **kwargs: Any) -> int:
        """Run the tests, then write the outcomes to ``DJANGO_SUITE_RESULTS``."""
        try:
            return super().run_tests(test_labels, **kwargs)
        finally:
            if path := os.environ.get("DJANGO_SUITE_RESULTS"):
                data = {"django": django.get_version(), "tests": self.outcomes, "databases": self.databases}
                Path(path).write_text(json.dumps(data, indent=1, sort_keys=True))
