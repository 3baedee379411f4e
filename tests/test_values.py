"""Awkward values, masked and excluded columns, and awkward names are logged faithfully."""

import datetime
import json
from decimal import Decimal

import pytest
from django.db import connection

from audit_log.models import LogJSONField, exact_json_decoder
from tests.factories import CustomerFactory
from tests.testapp.models import AuditLogEntry, Awkward, Customer, WeirdName

pytestmark = pytest.mark.django_db


def test_awkward_values_are_logged():
    text = "æøå 日本語 🚀 " + "x" * (1024 * 1024)
    thing = Awkward.objects.create(
        amount=Decimal("1.5"),
        day=datetime.date(2026, 2, 28),
        moment=datetime.datetime(2026, 2, 28, 12, 30, tzinfo=datetime.UTC),
        blob=b"\x00\x01\xff",
        tags=["a", "b,c", 'd"e'],
        data={"nested": {"null": None, "list": [1, 2.5, "x"]}},
        text=text,
        ratio=float("inf"),
    )
    with connection.cursor() as cursor:  # Django refuses NaN decimals; PostgreSQL and raw SQL do not
        cursor.execute("UPDATE testapp_awkward SET amount = 'NaN' WHERE id = %s", [thing.pk])
    changes = thing.audit_logs.get(action="INSERT").changes
    assert thing.audit_logs.get(action="UPDATE").changes == {"amount": [1.5, "NaN"]}
    assert changes["amount"] == 1.5
    assert changes["day"] == "2026-02-28"
    assert changes["moment"] == "2026-02-28T12:30:00+00:00"
    assert changes["blob"] == "\\x0001ff"
    assert changes["tags"] == ["a", "b,c", 'd"e']
    assert changes["data"] == {"nested": {"null": None, "list": [1, 2.5, "x"]}}
    assert changes["text"] == text
    assert changes["ratio"] == "Infinity"


def test_infinite_dates_written_by_raw_sql_are_logged():
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO testapp_awkward (day, moment, text) VALUES ('infinity', '-infinity', '') RETURNING id"
        )
        pk = cursor.fetchone()[0]
        cursor.execute("UPDATE testapp_awkward SET day = '-infinity' WHERE id = %s", [pk])
    insert, update = (entry.changes for entry in Awkward(pk=pk).audit_logs.order_by("id"))
    assert (insert["day"], insert["moment"]) == ("infinity", "-infinity")
    assert update == {"day": ["infinity", "-infinity"]}


def test_json_columns_compare_by_value():
    thing = Awkward.objects.create(data={"a": 1, "b": [1, 2]}, text="")
    Awkward.objects.filter(pk=thing.pk).update(data={"b": [1, 2], "a": 1})  # same jsonb value
    Awkward.objects.filter(pk=thing.pk).update(data={"a": None})
    updates = [entry.changes for entry in thing.audit_logs.filter(action="UPDATE")]
    assert updates == [{"data": [{"a": 1, "b": [1, 2]}, {"a": None}]}]


def test_masked_columns_record_that_they_changed_but_not_the_values():
    customer = CustomerFactory(password="hash-1")
    customer.password = "hash-2"
    customer.save()
    customer.password = ""
    customer.save()
    insert, first, second = (entry.changes for entry in customer.audit_logs.order_by("id"))
    assert insert["password"] == "**masked**"
    assert first == {"password": ["**masked**", "**masked**"]}
    assert second == {"password": ["**masked**", "**masked**"]}
    assert "hash-1" not in str(insert) + str(first)


def test_masked_null_stays_null():
    customer = CustomerFactory()
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE testapp_customer ALTER COLUMN password DROP NOT NULL")
        cursor.execute("UPDATE testapp_customer SET password = NULL WHERE id = %s", [customer.pk])
    assert customer.audit_logs.get(action="UPDATE").changes == {"password": ["**masked**", None]}


def test_excluded_columns_are_never_logged_and_alone_write_no_entry():
    customer = CustomerFactory(last_seen=datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC))
    Customer.objects.filter(pk=customer.pk).update(last_seen=datetime.datetime(2026, 1, 2, tzinfo=datetime.UTC))
    customer.refresh_from_db()
    pk = customer.pk
    customer.delete()
    insert, delete = (entry.changes for entry in Customer(pk=pk).audit_logs.order_by("id"))
    assert "last_seen" not in insert
    assert "last_seen" not in delete
    assert delete["name"] == customer.name


def test_weird_table_and_column_names_are_audited():
    thing = WeirdName.objects.create(camel="A", spaced=1, quoted=7)
    WeirdName.objects.filter(pk=thing.pk).update(camel="B", spaced=2, quoted=8)
    insert, update = (entry for entry in thing.audit_logs.order_by("id"))
    assert insert.changes == {"id": thing.pk, "CamelCol": "A", "with space-and-hyphen": 1, "Quoted Col": 7}
    assert update.changes == {"CamelCol": ["A", "B"], "with space-and-hyphen": [1, 2], "Quoted Col": [7, 8]}
    assert update.table_name == "Weird Name-Tbl"


@pytest.mark.parametrize(
    "text",
    [
        '{"amount": [1.10, 123456789012345.12345], "n": 1, "s": "\\u00e6", "nested": {"a": [null, true]}}',
        '"just a string"',
        "[1, 2.50]",
        ' {"padded": 1} ',  # not what PostgreSQL sends, but decoded all the same
    ],
)
def test_log_json_field_decodes_like_json_loads_with_the_exact_decoder(text):
    field = AuditLogEntry._meta.get_field("changes")
    assert isinstance(field, LogJSONField)
    assert field.from_db_value(text, None, connection) == json.loads(text, parse_float=Decimal)


def test_log_json_field_leaves_what_is_not_json_as_django_does():
    field = AuditLogEntry._meta.get_field("context")
    assert field.from_db_value("not json", None, connection) == "not json"
    assert field.from_db_value('{"a": 1} trailing', None, connection) == '{"a": 1} trailing'
    assert field.from_db_value(None, None, connection) is None


def test_log_json_field_is_a_plain_json_field_to_migrations():
    _, path, _, kwargs = AuditLogEntry._meta.get_field("changes").deconstruct()
    assert path == "django.db.models.JSONField"
    assert kwargs["decoder"] is exact_json_decoder
