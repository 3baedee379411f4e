"""Factories for log entries written directly, for shapes the triggers do not produce (old or odd data)."""

import itertools

import factory
from django.contrib.contenttypes.models import ContentType
from django.db import connection
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


def insert_raw_entry(*, changes_sql: str | None = None, context_sql: str | None = None, **fields) -> int:
    """Write an entry with raw SQL, ``changes`` and ``context`` as SQL expressions; return its id.

    For what no trigger writes and the ORM cannot (JSON nested thousands of
    levels deep ...). The other columns come from :class:`LogEntryFactory`.
    """
    entry = LogEntryFactory.build(**fields)
    expressions = {"changes": changes_sql, "context": context_sql}
    columns, values, params = [], [], []
    for field in AuditLogEntry._meta.concrete_fields:
        if field.primary_key:
            continue
        columns.append(connection.ops.quote_name(field.column))
        if expressions.get(field.name) is not None:
            values.append(expressions[field.name])
        else:
            values.append("%s")
            params.append(field.get_db_prep_save(getattr(entry, field.attname), connection))
    table = connection.ops.quote_name(AuditLogEntry._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(values)}) RETURNING id",
            params,
        )
        return cursor.fetchone()[0]


def nested_json_sql(depth: int, inner: str = "") -> str:
    """Return SQL for a JSON array nested ``depth`` levels deep (as text, to cast or to embed)."""
    return f"repeat('[', {depth}) || '{inner}' || repeat(']', {depth})"
