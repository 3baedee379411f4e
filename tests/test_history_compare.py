"""What a revert would write, told without writing: ``plan_revert`` and ``compare``."""

from decimal import Decimal

import pytest
from django.contrib.contenttypes.models import ContentType

from audit_log import history
from audit_log.history_compare import compare
from tests.factories import ArticleFactory, CustomerFactory, InvoiceFactory, TagFactory
from tests.testapp.models import AuditLogEntry, Invoice

pytestmark = pytest.mark.django_db


def log_of(obj):
    content_type = ContentType.objects.get_for_model(obj)
    return list(AuditLogEntry.objects.filter(content_type=content_type, object_id=str(obj.pk)).order_by("id"))


def newest_id():
    return AuditLogEntry.objects.order_by("-id").values_list("id", flat=True).first() or 0


def test_plan_revert_tells_exactly_what_revert_writes_and_writes_nothing():
    invoice = InvoiceFactory(number="P-1", amount=Decimal("10.00"), notes="same")
    invoice.number, invoice.amount = "P-2", Decimal("99.99")
    invoice.save()
    change = log_of(invoice)[1]
    start = newest_id()

    plan = history.plan_revert(change, obj=invoice)
    assert newest_id() == start
    assert plan.exists
    assert bool(plan)
    assert set(plan.changed_columns) == {"number", "amount"}
    assert plan.current_values == {"number": "P-2", "amount": Decimal("99.99")}
    result = history.revert(change, obj=invoice)
    assert set(result.changed_columns) == set(plan.changed_columns)


def test_plan_revert_names_the_columns_it_keeps():
    customer = CustomerFactory(name="Ola", password="hash-1")
    customer.name, customer.password = "Ola N", "hash-2"
    customer.save()

    plan = history.plan_revert(log_of(customer)[1], obj=customer)
    assert plan.changed_columns == ("name",)
    assert plan.kept_columns == {"password": history.MASKED, "last_seen": history.EXCLUDED}
    assert "hash-2" not in str(plan.current_values)


def test_compare_of_an_unchanged_state_is_empty():
    invoice = InvoiceFactory()
    state = log_of(invoice)[0].state_after()._audit_state
    difference = compare(state)
    assert not difference
    assert (difference.changed_columns, difference.m2m_added, difference.m2m_removed) == ((), {}, {})


def test_compare_of_a_deleted_object_says_it_would_be_inserted():
    invoice = InvoiceFactory()
    state = log_of(invoice)[0].state_after()._audit_state
    Invoice.objects.filter(pk=invoice.pk).delete()
    difference = compare(state)
    assert not difference.exists
    assert bool(difference)
    assert difference.current_values == {}


def test_plan_revert_includes_many_to_many_differences():
    one, two = TagFactory(), TagFactory()
    article = ArticleFactory()
    article.tags.add(one)
    article.tags.set([two])
    swap = [e for e in log_of(article) if e.table_name == "testapp_article_tags"][1]

    plan = history.plan_revert(swap, obj=article)
    assert (plan.m2m_added, plan.m2m_removed) == ({"tags": {one.pk}}, {"tags": {two.pk}})
    assert plan.changed_columns == ()


def test_plan_revert_refuses_what_revert_refuses():
    invoice = InvoiceFactory()
    with pytest.raises(history.RevertConflict) as raised:
        history.plan_revert(log_of(invoice)[0], obj=invoice)
    assert raised.value.kind == "absent"
