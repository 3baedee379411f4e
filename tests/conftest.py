import pytest
from django.db import connections

from audit_log.context import stack_for
from tests.factories import UserFactory
from tests.testapp.models import AuditLogEntry


@pytest.fixture
def user(db):
    return UserFactory(username="alice")


@pytest.fixture
def other_user(db):
    return UserFactory(username="bob")


@pytest.fixture
def entries(db):
    """All log entries, oldest first."""

    def fetch(**filters):
        return list(AuditLogEntry.objects.filter(**filters).order_by("id"))

    return fetch


@pytest.fixture
def visible_context():
    """What a trigger fired now on a database would read as the context ("" when none)."""

    def read(alias="default"):
        with connections[alias].cursor() as cursor:
            cursor.execute("SELECT current_setting('audit_log.context', true)")
            return cursor.fetchone()[0] or ""

    return read


@pytest.fixture(autouse=True)
def _no_context_leaks():
    """Every test must leave every connection without an active audit context."""
    yield
    for alias in connections:
        stack = stack_for(connections[alias])
        assert not stack.frames, f"audit context left active on {alias!r}"
