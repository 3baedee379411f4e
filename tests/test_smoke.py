from audit_log.context import audit_context
from tests.testapp.models import Invoice


def test_insert_update_delete_are_logged(user, entries):
    with audit_context("test", performed_by=user, context={"why": "smoke"}):
        invoice = Invoice.objects.create(number="A-1")
        invoice.status = "sent"
        invoice.save()
        invoice.delete()
    logged = entries()
    assert [e.action for e in logged] == ["INSERT", "UPDATE", "DELETE"]
    assert logged[1].changes == {"status": ["draft", "sent"]}
    assert all(e.performed_by_id == user.pk for e in logged)
    assert logged[0].context == {"why": "smoke"}
