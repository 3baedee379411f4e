"""Settings for Django's ``runtests.py`` when ``python -m tests.django_suite`` runs it.

Django's own ``tests/test_sqlite.py`` (which runtests uses by default, and
which changes between Django versions), with PostgreSQL:
``DJANGO_SUITE_DATABASE`` holds the connection settings (JSON, from
``DATABASE_URL`` or the embedded server) and ``DJANGO_SUITE_BACKEND`` says
which engine, so the two runs differ in nothing else. runtests sets
``INSTALLED_APPS``, ``MIDDLEWARE`` and the rest itself.
"""

import json
import os

# Beside runtests.py, which is first on sys.path when it runs.
from test_sqlite import *  # noqa: F403 - all of Django's test settings, whatever this version has

from tests.django_suite import ENGINES

_connection = json.loads(os.environ["DJANGO_SUITE_DATABASE"])
_engine = ENGINES[os.environ["DJANGO_SUITE_BACKEND"]]
_name = _connection["NAME"]

DATABASES = {
    "default": {**_connection, "ENGINE": _engine},
    # Django's multi-database tests need a second alias.
    "other": {
        **_connection,
        "ENGINE": _engine,
        "NAME": f"{_name}_other",
        "TEST": {"NAME": f"test_{_name}_other"},
    },
}

# Records each test's outcome and, at the end, what the triggers did.
TEST_RUNNER = "tests.django_suite.runner.SuiteRunner"

# The log models, in the app the command adds to the test labels (both runs).
AUDIT_LOG_CONTEXT_MODEL = "audit_log_suite.AuditLogContext"
AUDIT_LOG_ENTRY_MODEL = "audit_log_suite.AuditLogEntry"
