"""A PostgreSQL backend that audits every table it creates: ``ENGINE = "tests.django_suite.audit_everything"``.

Only for ``python -m tests.django_suite``: it runs Django's own test suite with
a trigger on every table, which no real project wants.
"""
