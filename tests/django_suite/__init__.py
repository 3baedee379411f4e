"""Run Django's own test modules with every table audited: ``python -m tests.django_suite``.

Schema changes must never break writes. Django's test suite creates, alters,
renames and drops tables in every way Django can, so running it once with the
stock PostgreSQL backend and once with a trigger on every table shows what
auditing breaks. The command downloads the sdist of the installed Django from
PyPI, extracts its ``tests/`` into the git-ignored ``.django-suite/`` folder,
runs ``runtests.py`` twice and prints the tests whose outcome differs.

Modules:
    ``__main__``: the command. ``sdist``: download and extraction.
    ``settings``: runtests' settings. ``runner``: the test runner that records
    outcomes and trigger counts. ``results``: the comparison.
    ``audit_everything``: the backend that audits every table.
    ``audit_log_suite``: the log models' app, copied into Django's tests.
"""

#: The two backends the suite runs with, by the name ``DJANGO_SUITE_BACKEND`` gives.
ENGINES = {
    "stock": "django.db.backends.postgresql",
    "audited": "tests.django_suite.audit_everything",
}
