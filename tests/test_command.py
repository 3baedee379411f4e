"""``AuditLoggedCommand``: command runs are the context of their changes."""

import io
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import connection

from audit_log.context import stack_for
from tests.factories import InvoiceFactory

pytestmark = pytest.mark.django_db


def test_command_run_is_recorded_as_the_context(entries, tmp_path):
    invoice = InvoiceFactory(amount=Decimal("1.00"))
    report = tmp_path / "report.txt"
    report.write_text("x")
    call_command(
        "bump_amounts",
        "2.50",
        "--since=2026-01-01",
        f"--out={tmp_path / 'out.csv'}",
        f"--report={report}",
        stdout=io.StringIO(),
    )
    [entry] = entries(action="UPDATE")
    assert entry.object_id == str(invoice.pk)
    assert entry.changes == {"amount": [1.0, 3.5]}
    assert entry.context_type == "management-command"
    assert entry.performed_by_id is None
    context = entry.context
    assert context["command"] == "bump_amounts"
    assert context["args"] == []
    assert context["kwargs"]["amount"] == "2.50"  # a Decimal, converted
    assert context["kwargs"]["since"] == "2026-01-01"  # a date
    assert context["kwargs"]["out"] == str(tmp_path / "out.csv")  # a Path
    assert context["kwargs"]["report"] == str(report)  # an open file: its name
    assert context["kwargs"]["verbosity"] == 1
    assert "stdout" not in context["kwargs"]


def test_command_context_is_cleared_afterwards(entries):
    InvoiceFactory()
    call_command("bump_amounts", "1", stdout=io.StringIO())
    InvoiceFactory()
    assert [entry.context_type for entry in entries()] == ["unknown", "management-command", "unknown"]
    assert stack_for(connection).frames == []


def test_command_that_fails_clears_its_context(entries):
    InvoiceFactory()
    with pytest.raises(RuntimeError, match="command failed"):
        call_command("bump_amounts", "1", fail=True, stdout=io.StringIO())
    InvoiceFactory()
    assert [entry.context_type for entry in entries()] == ["unknown", "management-command", "unknown"]
