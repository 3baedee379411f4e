"""Factories for log entries written directly, for shapes the triggers do not produce (old or odd data)."""

import itertools

import factory
from django.contrib.contenttypes.models import ContentType
from django.utils import timezone

from tests.testapp.models import AuditLogEntry, Invoice

_transactions = itertools.count(9_000_000)


class LogEntryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = AuditLogEntry

    content_type = factory.LazyFunction(lambda: ContentType.objects.get_for_model(Invoice))
    object_id = "1"
    table_name = "testapp_invoice"
    action = "UPDATE"
    at = factory.LazyFunction(timezone.now)
    changes = factory.LazyFunction(lambda: {"status": ["draft", "sent"]})
    transaction_id = factory.LazyFunction(lambda: next(_transactions))
    context_type = "test"
    context = factory.LazyFunction(dict)
