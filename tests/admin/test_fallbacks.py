"""Every log page renders whatever the database holds: odd JSON, objects that cannot be loaded, models that are gone.

The odd rows are written with raw SQL, as something other than the triggers
(or an old version of them, or a person in psql) could have written them.
"""

import datetime
import decimal

import pytest
from django.contrib.contenttypes.models import ContentType
from django.db import connection

from audit_log.context import audit_context
from audit_log.models import UndecodableJSON
from audit_log_admin.diff import DiffFormatter, pretty_json
from audit_log_admin.fallbacks import load_objects
from tests.admin.factories import LogEntryFactory, insert_raw_entry, nested_json_sql
from tests.factories import CustomerFactory, InvoiceFactory
from tests.testapp.models import AuditLogEntry, Awkward, Customer, Invoice

DEEP = 3_000  # deeper than Python's json can decode (its recursion limit is 1,000)


def raw(sql, params=()):
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone() if cursor.description else None


def table(model):
    return connection.ops.quote_name(model._meta.db_table)


def ct(model):
    return ContentType.objects.get_for_model(model)


def deep_entry(**fields):
    """An entry whose changes and context are nested ``DEEP`` levels deep."""
    return insert_raw_entry(
        changes_sql=f"""('{{"status": ' || {nested_json_sql(DEEP, '"x"')} || '}}')::jsonb""",
        context_sql=f"""('{{"path": ' || {nested_json_sql(DEEP)} || '}}')::jsonb""",
        **fields,
    )


# --- decoding ---------------------------------------------------------------------------------


def test_log_json_field_returns_json_too_deep_for_python_as_the_stored_text(db):
    pk = deep_entry()
    decodable = insert_raw_entry(changes_sql=f"""('{{"n": ' || {nested_json_sql(50, "1.5")} || '}}')::jsonb""")
    entry = AuditLogEntry.objects.get(pk=pk)
    assert isinstance(entry.changes, UndecodableJSON)
    assert entry.changes == '{"status": ' + "[" * DEEP + '"x"' + "]" * DEEP + "}"
    assert isinstance(entry.context, UndecodableJSON)
    value = AuditLogEntry.objects.get(pk=decodable).changes["n"]  # what Python can decode is decoded
    for _ in range(50):
        value = value[0]
    assert value == decimal.Decimal("1.5")


def test_log_json_field_returns_numbers_too_long_for_python_as_the_stored_text(db):
    pk = insert_raw_entry(changes_sql="""('{"amount": [1, ' || repeat('7', 5000) || ']}')::jsonb""")
    changes = AuditLogEntry.objects.get(pk=pk).changes
    assert isinstance(changes, UndecodableJSON)
    assert changes.endswith("7" * 5000 + "]}")


def test_pretty_json_prints_any_depth_without_recursion():
    deep = inner = []
    for _ in range(100_000):
        inner.append([])
        inner = inner[0]
    text = pretty_json({"deep": deep})
    assert text.count("[") == 100_001
    assert text.startswith('{\n  "deep": [\n    [\n')
    assert pretty_json({"a": [1, {"b": None}]}, indent=None) == '{"a": [1, {"b": null}]}'


# --- pages with undecodable or odd JSON -------------------------------------------------------


def test_changelist_renders_entries_whose_json_python_cannot_decode(superuser_client, log_url):
    deep_entry(context_type="http-request")
    response = superuser_client.get(log_url())
    assert response.status_code == 200
    content = response.content.decode()
    assert "(changes could not be decoded)" in content
    assert "(context could not be decoded)" in content


def test_entry_page_shows_json_python_cannot_decode_as_stored(superuser_client, entry_url):
    pk = deep_entry()
    response = superuser_client.get(entry_url(AuditLogEntry(pk=pk)))
    assert response.status_code == 200
    detail = response.context["audit_log"]
    assert detail.display.diff.raw.startswith('{"status": [[[')
    assert "could not be decoded" in detail.display.diff.note
    assert detail.context_json.startswith('{"path": [[[')
    assert "could not be decoded" in detail.context_note
    content = response.content.decode()
    assert "&quot;status&quot;: [[[[" in content  # escaped
    assert "The context could not be decoded" in content


def test_history_view_shows_json_python_cannot_decode_as_stored(superuser_client, invoice, invoice_ct, history_url):
    deep_entry(content_type=invoice_ct, object_id=str(invoice.pk))
    response = superuser_client.get(history_url(invoice))
    assert response.status_code == 200
    assert "The recorded changes could not be decoded" in response.content.decode()


def test_history_view_renders_values_nested_as_deep_as_python_decodes(
    superuser_client, invoice, invoice_ct, history_url
):
    # 900 levels: decodable, but deeper than the stack a page has left for recursion.
    value = nested_json_sql(900)
    insert_raw_entry(
        content_type=invoice_ct,
        object_id=str(invoice.pk),
        changes_sql=f"""('{{"notes": [' || {value} || ', "x"], "status": [' || {value} || ', "x"]}}')::jsonb""",
        context_sql=f"""('{{"method": ' || {value} || ', "path": "/x/"}}')::jsonb""",
        context_type="http-request",
    )
    response = superuser_client.get(history_url(invoice))
    assert response.status_code == 200


@pytest.mark.parametrize("changes", ["'[1, 2]'", "'\"<script>alert(1)</script>\"'", "'42'"])
def test_entry_page_and_changelist_show_changes_that_are_no_object_as_stored(
    superuser_client, log_url, entry_url, changes
):
    pk = insert_raw_entry(changes_sql=f"{changes}::jsonb")
    listed = superuser_client.get(log_url())
    assert listed.status_code == 200
    response = superuser_client.get(entry_url(AuditLogEntry(pk=pk)))
    assert response.status_code == 200
    content = response.content.decode() + listed.content.decode()
    assert "<script>alert(1)" not in content
    assert "(changes are not a JSON object)" in listed.content.decode()
    assert "not a JSON object of columns" in content


def test_formatter_context_summary_of_any_shape(db):
    formatter = DiffFormatter()
    deep = [[[[["/deep/"]]]]]
    request = LogEntryFactory.build(context_type="http-request", context={"method": ["POST"], "path": deep})
    command = LogEntryFactory.build(
        context_type="management-command", context={"command": {"x": 1}, "args": [deep], "kwargs": {"k": deep}}
    )
    assert formatter.format_context(request) == '["POST"] [[[[["/deep/"]]]]]'
    assert formatter.format_context(command) == '{"x": 1} [[[[["/deep/"]]]]] k=[[[[["/deep/"]]]]]'


def test_formatter_cuts_data_shown_as_stored():
    formatter = DiffFormatter()
    formatter.raw_text_limit = 10
    assert formatter.stored_text(UndecodableJSON("[" * 20)) == "[" * 10 + "… (10 more characters)"


# --- objects that cannot be loaded ----------------------------------------------------------------


def awkward_with(column, value):
    """An Awkward row (written by raw SQL, so logged without a context) holding ``value`` in ``column``."""
    (pk,) = raw(f"INSERT INTO {table(Awkward)} ({column}, text) VALUES (%s, '') RETURNING id", [value])
    return pk


@pytest.mark.parametrize(
    ("column", "value"),
    [("day", "20000-01-01"), ("moment", "20000-01-01 00:00+00"), ("day", "0044-03-15 BC")],
)
def test_pages_of_an_object_whose_date_python_cannot_hold(
    superuser_client, log_url, entry_url, history_url, column, value
):
    pk = awkward_with(column, value)
    entry = AuditLogEntry.objects.get(content_type=ct(Awkward), object_id=str(pk))
    label = f"Awkward {pk} (could not be loaded)"
    listed = superuser_client.get(log_url())
    assert listed.status_code == 200
    assert label in listed.content.decode()
    page = superuser_client.get(entry_url(entry))
    assert page.status_code == 200
    assert page.context["audit_log"].display.object.text == label
    assert f"<h2>Created: {label}</h2>" in page.content.decode()
    history = superuser_client.get(history_url(Awkward(pk=pk)))
    assert history.status_code == 200
    assert f"Change history: {label}" in history.content.decode()
    assert [item.entry.pk for item in history.context["entries"]] == [entry.pk]


@pytest.mark.skipif(connection.Database.__name__ != "psycopg", reason="psycopg2 reads 'infinity' as datetime.max")
def test_pages_of_an_object_holding_infinity(superuser_client, log_url, entry_url, history_url):
    # psycopg 3 refuses to convert 'infinity' (DataError).
    pk = awkward_with("moment", "infinity")
    entry = AuditLogEntry.objects.get(content_type=ct(Awkward), object_id=str(pk))
    label = f"Awkward {pk} (could not be loaded)"
    assert label in superuser_client.get(log_url()).content.decode()
    assert superuser_client.get(entry_url(entry)).context["audit_log"].display.object.text == label
    assert f"Change history: {label}" in superuser_client.get(history_url(Awkward(pk=pk))).content.decode()


def test_pages_showing_a_related_object_that_cannot_be_loaded(superuser_client, user, log_url, entry_url, history_url):
    with audit_context("test", performed_by=user):
        customer = CustomerFactory(name="Far future")
        invoice = InvoiceFactory(customer=customer)
    raw(f"UPDATE {table(Customer)} SET last_seen = '20000-01-01' WHERE id = %s", [customer.pk])
    label = f"Customer {customer.pk} (could not be loaded)"
    history = superuser_client.get(history_url(invoice))
    assert history.status_code == 200
    created = history.context["entries"][-1]
    assert {row.label: row.new for row in created.diff.rows}["Customer"].text == label
    entry = AuditLogEntry.objects.get(content_type=ct(Invoice), action="INSERT")
    assert superuser_client.get(entry_url(entry)).status_code == 200
    listed = superuser_client.get(log_url())
    assert listed.status_code == 200
    assert label in listed.content.decode()  # the customer's own entry


@pytest.fixture
def enum_like_status(monkeypatch):
    """Make Invoice.status refuse "bogus" when read, as a field converting to an enum would."""

    def from_db_value(value, expression, connection):
        if value == "bogus":
            raise ValueError("'bogus' is not a valid Status")
        return value

    monkeypatch.setattr(Invoice._meta.get_field("status"), "from_db_value", from_db_value, raising=False)


def test_pages_of_an_object_with_a_value_its_field_refuses(
    superuser_client, invoice, enum_like_status, log_url, entry_url, history_url
):
    raw(f"UPDATE {table(Invoice)} SET status = 'bogus' WHERE id = %s", [invoice.pk])
    other = InvoiceFactory(number="FINE")  # on the same page, still shown
    label = f"Invoice {invoice.pk} (could not be loaded)"
    listed = superuser_client.get(log_url())
    assert listed.status_code == 200
    content = listed.content.decode()
    assert label in content
    assert f'<a href="/admin/testapp/invoice/{other.pk}/change/">FINE</a>' in content
    latest = AuditLogEntry.objects.filter(object_id=str(invoice.pk), table_name="testapp_invoice").first()
    page = superuser_client.get(entry_url(latest))
    assert page.status_code == 200
    assert {row.label: row.new.text for row in page.context["audit_log"].display.diff.rows}["Status"] == "bogus"
    history = superuser_client.get(history_url(invoice))
    assert history.status_code == 200
    assert len(history.context["entries"]) == 4
    assert superuser_client.get(history_url(Invoice(pk=987654))).status_code == 302  # a missing one still redirects


def test_pages_of_an_object_whose_str_fails(superuser_client, invoice, monkeypatch, log_url, entry_url):
    def broken(self):
        raise TypeError("__str__ returned non-string")

    monkeypatch.setattr(Invoice, "__str__", broken)
    content = superuser_client.get(log_url()).content.decode()
    assert f'<a href="/admin/testapp/invoice/{invoice.pk}/change/">Invoice {invoice.pk}</a>' in content
    assert superuser_client.get(entry_url(AuditLogEntry.objects.first())).status_code == 200


def test_pages_of_an_entry_whose_model_is_gone_and_whose_json_cannot_be_decoded(superuser_client, log_url, entry_url):
    pk = deep_entry(content_type=ContentType.objects.create(app_label="gone", model="thing"), table_name="gone_tbl")
    assert superuser_client.get(log_url()).status_code == 200
    assert superuser_client.get(entry_url(AuditLogEntry(pk=pk))).status_code == 200


def test_load_objects_loads_the_rest_and_reports_what_cannot_be_loaded(db, django_assert_num_queries):
    fine = Awkward.objects.create(day=datetime.date(2024, 1, 1))
    broken = awkward_with("day", "20000-01-01")
    with django_assert_num_queries(1):
        found, unloadable = load_objects(Awkward, "id", [fine.pk], "default")
    assert (list(found), unloadable) == ([fine.pk], set())
    # the batch, the keys that exist, then each of them alone
    with django_assert_num_queries(4):
        found, unloadable = load_objects(Awkward, "id", [fine.pk, broken, 987654], "default")
    assert (list(found), unloadable) == ([fine.pk], {broken})


def test_formatter_marks_unloadable_foreign_keys_and_objects(db):
    customer = CustomerFactory()
    raw(f"UPDATE {table(Customer)} SET last_seen = %s WHERE id = %s", ["20000-01-01", customer.pk])
    entry = LogEntryFactory(changes={"customer_id": [None, customer.pk]})
    on_customer = LogEntryFactory(content_type=ct(Customer), object_id=str(customer.pk), table_name="x")
    formatter = DiffFormatter()
    entries = list(AuditLogEntry.objects.filter(pk__in=[entry.pk, on_customer.pk]).order_by("id"))
    formatter.prefetch(entries, objects=True)
    new = formatter.format_entry(entries[0]).rows[0].new
    assert (new.text, new.kind) == (f"Customer {customer.pk} (could not be loaded)", "unloadable")
    assert formatter.format_object(entries[1]).kind == "unloadable"
