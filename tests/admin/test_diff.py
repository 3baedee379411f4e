import datetime
import decimal
import re
from html import unescape

import pytest
from django.contrib.admin import site
from django.contrib.contenttypes.models import ContentType
from django.contrib.postgres.fields import ArrayField
from django.core.exceptions import ImproperlyConfigured
from django.db import connection, models
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from hypothesis import given
from hypothesis import strategies as st

from audit_log.context import audit_context
from audit_log_admin.conf import conf
from audit_log_admin.diff import (
    ColumnChange,
    DiffFormatter,
    DisplayValue,
    TextSegment,
    compute_diff,
    field_label,
    pretty_json,
    word_diff,
)
from tests.admin.factories import LogEntryFactory
from tests.factories import CustomerFactory, InvoiceFactory, UserFactory
from tests.testapp.models import AuditLogEntry, Awkward, BigThing, Customer, Invoice, UUIDThing, WeirdName


def formatter_for(user=None):
    request = RequestFactory().get("/")
    request.user = user or UserFactory(username="formatter-root", is_staff=True, is_superuser=True)
    return DiffFormatter(request=request, admin_site=site)


def formatted(entry, formatter=None):
    formatter = formatter or formatter_for()
    entry = AuditLogEntry.objects.select_related("content_type", "performed_by").get(pk=entry.pk)
    formatter.prefetch([entry], objects=True)
    return formatter.format_entry(entry)


def rows_by_label(diff):
    return {row.label: row for row in diff.rows}


# --- pure functions -----------------------------------------------------------------


def test_compute_diff_update_pairs_old_and_new():
    diff = compute_diff("UPDATE", {"status": ["draft", "sent"]})
    assert diff.changes == (ColumnChange("status", old="draft", new="sent", has_old=True, has_new=True),)
    assert not diff.malformed


def test_compute_diff_insert_has_only_new_values():
    diff = compute_diff("INSERT", {"id": 1, "status": "draft"})
    assert [(c.column, c.new, c.has_old, c.has_new) for c in diff.changes] == [
        ("id", 1, False, True),
        ("status", "draft", False, True),
    ]


def test_compute_diff_delete_has_only_old_values():
    diff = compute_diff("DELETE", {"status": "paid"})
    assert diff.changes == (ColumnChange("status", old="paid", has_old=True),)


def test_compute_diff_malformed_update_is_flagged_not_raised():
    diff = compute_diff("UPDATE", {"status": "sent", "amount": [1, 2]})
    assert diff.malformed
    assert [c.column for c in diff.changes] == ["status", "amount"]


def test_compute_diff_non_mapping_changes_are_flagged():
    assert compute_diff("UPDATE", ["not", "a", "dict"]).malformed
    assert not compute_diff("UPDATE", None).malformed


def test_word_diff_marks_changed_words():
    assert word_diff("the quick brown fox", "the quick red fox") == (
        TextSegment("equal", "the quick "),
        TextSegment("delete", "brown"),
        TextSegment("insert", "red"),
        TextSegment("equal", " fox"),
    )


@given(st.text(max_size=200), st.text(max_size=200))
def test_word_diff_reassembles_both_texts(old, new):
    segments = word_diff(old, new)
    assert "".join(s.text for s in segments if s.op != "insert") == old
    assert "".join(s.text for s in segments if s.op != "delete") == new


def test_word_diff_gives_up_on_huge_texts():
    assert word_diff("a " * 10, "b " * 10, max_tokens=5) is None


def test_pretty_json_writes_decimals_as_numbers():
    assert (
        pretty_json({"a": [decimal.Decimal("1.50"), "x"], "b": {}})
        == '{\n  "a": [\n    1.50,\n    "x"\n  ],\n  "b": {}\n}'
    )


def test_logged_decimals_are_exact(user):
    with audit_context("test", performed_by=user):
        Awkward.objects.create(amount=decimal.Decimal("123456789012345.12345"))
    entry = AuditLogEntry.objects.get(table_name="testapp_awkward")
    assert entry.changes["amount"] == decimal.Decimal("123456789012345.12345")


# --- the formatter: labels, order, actions ---------------------------------------------


def test_formatter_labels_are_verbose_names_in_field_order(invoice, latest_entry):
    diff = formatted(latest_entry(action="INSERT", table_name="testapp_invoice"))
    assert [row.label for row in diff.rows] == ["ID", "Number", "Status", "Amount", "Customer", "Notes"]


def test_formatter_insert_shows_initial_values_only(invoice, latest_entry):
    diff = formatted(latest_entry(action="INSERT", table_name="testapp_invoice"))
    assert diff.shows_new
    assert not diff.shows_old
    number = rows_by_label(diff)["Number"]
    assert number.old is None
    assert number.new.text == "INV-1"


def test_formatter_delete_shows_final_values_only(user):
    with audit_context("test", performed_by=user):
        doomed = InvoiceFactory(number="DOOMED")
        doomed.delete()
    diff = formatted(AuditLogEntry.objects.get(action="DELETE"))
    assert diff.shows_old
    assert not diff.shows_new
    assert rows_by_label(diff)["Number"].old.text == "DOOMED"
    assert rows_by_label(diff)["Number"].new is None


def test_formatter_update_shows_changed_fields_only(invoice, latest_entry):
    diff = formatted(latest_entry(action="UPDATE"))
    rows = rows_by_label(diff)
    assert set(rows) == {"Status", "Amount"}
    assert (rows["Status"].old.text, rows["Status"].new.text) == ("Sent", "Paid")


# --- the formatter: kinds of values --------------------------------------------------


def test_formatter_foreign_key_shows_str_linked_to_the_admin(invoice, customer, latest_entry):
    row = rows_by_label(formatted(latest_entry(action="INSERT", table_name="testapp_invoice")))["Customer"]
    assert row.new.text == "ACME"
    assert row.new.url == f"/admin/testapp/customer/{customer.pk}/change/"


def test_formatter_foreign_key_is_not_linked_without_view_permission(invoice, latest_entry, make_staff):
    formatter = formatter_for(make_staff("clerk", "testapp.view_invoice"))
    row = rows_by_label(formatted(latest_entry(action="INSERT", table_name="testapp_invoice"), formatter))["Customer"]
    assert row.new.text == "ACME"
    assert row.new.url == ""


def test_formatter_fetches_related_objects_of_a_page_in_one_query_per_model(user):
    with audit_context("test", performed_by=user):
        for _number in range(5):
            InvoiceFactory(customer=CustomerFactory())
    entries = list(AuditLogEntry.objects.select_related("content_type", "performed_by"))
    formatter = formatter_for()
    formatter.model_info(entries[0])
    with CaptureQueriesContext(connection) as queries:
        formatter.prefetch(entries)
        diffs = [formatter.format_entry(entry) for entry in entries]
    assert len(queries.captured_queries) == 1
    assert sum(1 for diff in diffs for row in diff.rows if row.label == "Customer" and row.new.url) == 5


def test_formatter_deleted_related_object_is_labelled(user):
    with audit_context("test", performed_by=user):
        gone = CustomerFactory()
        InvoiceFactory(number="ORPHAN", customer=gone)
        gone_pk = gone.pk
        Customer.objects.filter(pk=gone_pk).delete()
    entry = AuditLogEntry.objects.filter(action="INSERT", table_name="testapp_invoice").get()
    row = rows_by_label(formatted(entry))["Customer"]
    assert row.new == DisplayValue(text=f"Customer {gone_pk} (deleted)", kind="deleted")


def test_formatter_choice_shows_its_label_and_unknown_values_as_stored(db):
    entry = LogEntryFactory(changes={"status": ["retired", "paid"]})
    row = rows_by_label(formatted(entry))["Status"]
    assert (row.old.text, row.old.kind) == ("retired", "raw")
    assert row.new.text == "Paid"


def test_formatter_boolean_is_a_yes_no_icon():
    formatter = DiffFormatter()
    assert formatter.format_value(models.BooleanField(), True) == DisplayValue("Yes", kind="boolean", boolean=True)
    assert formatter.format_value(models.BooleanField(), False).boolean is False


def test_formatter_datetime_uses_the_current_time_zone(user):
    with audit_context("test", performed_by=user):
        Awkward.objects.create(moment=datetime.datetime(2026, 1, 1, 10, 0, tzinfo=datetime.UTC))
    entry = AuditLogEntry.objects.get(table_name="testapp_awkward")
    assert rows_by_label(formatted(entry))["Moment"].new.text == "Jan. 1, 2026, 11 a.m."  # Europe/Oslo
    with timezone.override("America/New_York"):
        assert rows_by_label(formatted(entry))["Moment"].new.text == "Jan. 1, 2026, 5 a.m."


def test_formatter_dates_numbers_and_decimals_use_admin_formats(user):
    with audit_context("test", performed_by=user):
        Awkward.objects.create(day=datetime.date(2026, 3, 4), amount=decimal.Decimal("123456789012345.12345"))
    rows = rows_by_label(formatted(AuditLogEntry.objects.get(table_name="testapp_awkward")))
    assert rows["Day"].new.text == "March 4, 2026"
    assert rows["Amount"].new.text == "123456789012345.12345"
    assert rows["ID"].new.kind == "number"


def test_formatter_time_field_is_formatted():
    assert DiffFormatter().format_value(models.TimeField(), "13:45:00").text == "1:45 p.m."


def test_formatter_json_is_pretty_printed(user):
    with audit_context("test", performed_by=user):
        Awkward.objects.create(data={"b": [1, 2.5], "a": None})
    row = rows_by_label(formatted(AuditLogEntry.objects.get(table_name="testapp_awkward")))["Data"]
    assert row.new == DisplayValue(text='{\n  "a": null,\n  "b": [\n    1,\n    2.5\n  ]\n}', kind="json")


def test_formatter_arrays_binary_and_special_floats(user):
    with audit_context("test", performed_by=user):
        Awkward.objects.create(tags=["red", "green"], blob=b"hello", ratio=float("nan"))
    rows = rows_by_label(formatted(AuditLogEntry.objects.get(table_name="testapp_awkward")))
    assert rows["Tags"].new.text == "red, green"
    assert rows["Blob"].new == DisplayValue(text="5 bytes: 68656c6c6f", kind="binary")
    assert rows["Ratio"].new == DisplayValue(text="NaN", kind="raw")


def test_formatter_long_binary_is_cut():
    value = "\\x" + "ab" * 100
    assert DiffFormatter().format_value(models.BinaryField(), value).text == "100 bytes: " + "ab" * 16 + "…"


def test_formatter_null_is_the_admin_empty_value(invoice, latest_entry):
    row = rows_by_label(formatted(latest_entry(action="INSERT", table_name="testapp_invoice")))["ID"]
    assert row.new.kind == "number"
    empty = DiffFormatter(admin_site=site).format_value(models.CharField(), None)
    assert empty == DisplayValue(text="-", kind="empty")


def test_formatter_masked_column_hides_the_value(user):
    with audit_context("test", performed_by=user):
        customer = CustomerFactory(password="hunter2")
        customer.password = "correct horse"
        customer.save()
    diff = formatted(AuditLogEntry.objects.get(table_name="testapp_customer", action="UPDATE"))
    row = rows_by_label(diff)["Password"]
    assert row.old == row.new == DisplayValue(text="hidden", kind="masked")
    assert row.segments == ()


def test_formatter_lists_excluded_fields_as_not_logged(customer, latest_entry):
    diff = formatted(latest_entry(table_name="testapp_customer"))
    assert diff.not_logged == ("Last seen",)
    assert "Last seen" not in rows_by_label(diff)


def test_formatter_vanished_column_falls_back_to_the_column_name(db):
    entry = LogEntryFactory(changes={"legacy_code": ["A", "B"], "status": ["draft", "sent"]})
    rows = rows_by_label(formatted(entry))
    assert rows["legacy_code"].note == "No longer a field of invoice."
    assert (rows["legacy_code"].old.text, rows["legacy_code"].new.text) == ("A", "B")
    assert [row.label for row in formatted(entry).rows] == ["Status", "legacy_code"]


def test_formatter_model_no_longer_installed_shows_values_as_stored(db):
    gone = ContentType.objects.create(app_label="gone", model="thing")
    entry = LogEntryFactory(content_type=gone, table_name="gone_thing", changes={"data": [{"a": 1}, {"a": 2}]})
    row = formatted(entry).rows[0]
    assert row.label == "data"
    assert row.note == ""
    assert row.new == DisplayValue(text='{\n  "a": 2\n}', kind="json")


def test_formatter_missing_content_type_row_is_tolerated(db):
    entry = LogEntryFactory(content_type_id=987654, changes={"status": ["a", "b"]})
    formatter = formatter_for()
    diff = formatted(entry, formatter)
    assert diff.rows[0].label == "status"
    assert formatter.format_model(entry) == "testapp_invoice"


def test_formatter_malformed_changes_get_a_note(db):
    diff = formatted(LogEntryFactory(changes={"status": "sent"}))
    assert diff.note
    assert diff.rows[0].new.text == "Sent"


def test_formatter_long_text_gets_an_inline_word_diff(user):
    with audit_context("test", performed_by=user):
        invoice = InvoiceFactory(notes="The quick brown fox jumps over the lazy dog, again and again and again.")
        invoice.notes = "The quick red fox jumps over the lazy dog, again and again and again."
        invoice.save()
    row = rows_by_label(formatted(AuditLogEntry.objects.get(action="UPDATE")))["Notes"]
    assert [s for s in row.segments if s.op != "equal"] == [
        TextSegment("delete", "brown"),
        TextSegment("insert", "red"),
    ]


def test_formatter_short_text_is_shown_side_by_side(invoice, latest_entry):
    assert all(row.segments == () for row in formatted(latest_entry(action="UPDATE")).rows)


def test_formatter_multiline_text_is_word_diffed_even_when_short():
    segments = DiffFormatter().format_text_change(models.CharField(), "a\nb", "a\nc")
    assert segments == (TextSegment("equal", "a\n"), TextSegment("delete", "b"), TextSegment("insert", "c"))


def test_formatter_text_fields_are_always_word_diffed():
    assert DiffFormatter().format_text_change(models.TextField(), "a b", "a c") is not None
    assert DiffFormatter().format_text_change(models.CharField(), "a b", "a c") is None


FIELDS = [
    models.BooleanField(),
    models.DateTimeField(),
    models.DateField(),
    models.TimeField(),
    models.DecimalField(max_digits=5, decimal_places=2),
    models.IntegerField(),
    models.FloatField(),
    models.JSONField(),
    models.BinaryField(),
    models.CharField(choices=[("a", "A")]),
    models.TextField(),
    models.UUIDField(),
    ArrayField(models.IntegerField()),
    None,
]
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=8,
)


@given(st.sampled_from(FIELDS), JSON)
def test_formatter_never_raises_on_any_stored_value(field, value):
    result = DiffFormatter().format_value(field, value)
    assert isinstance(result, DisplayValue)
    assert isinstance(result.text, str)


# --- who, where, summaries ---------------------------------------------------------


def test_formatter_user_is_linked_while_the_user_exists(invoice, user, latest_entry):
    entry = AuditLogEntry.objects.select_related("performed_by").get(pk=latest_entry().pk)
    assert formatter_for().format_user(entry) == DisplayValue(text="alice", url=f"/admin/auth/user/{user.pk}/change/")


def test_formatter_deleted_user_shows_the_name_snapshot(invoice, user, latest_entry):
    user.delete()
    entry = AuditLogEntry.objects.select_related("performed_by").get(pk=latest_entry().pk)
    assert formatter_for().format_user(entry) == DisplayValue(text="alice (deleted user)", kind="deleted")
    unjoined = AuditLogEntry.objects.get(pk=entry.pk)
    assert formatter_for().format_user(unjoined).kind == "deleted"


def test_formatter_no_user_is_the_empty_value(db):
    assert DiffFormatter().format_user(LogEntryFactory()) == DisplayValue(text="-", kind="empty")


def test_formatter_context_summaries(db):
    formatter = DiffFormatter()
    request = LogEntryFactory(context_type="http-request", context={"method": "POST", "path": "/admin/x/"})
    command = LogEntryFactory(
        context_type="management-command",
        context={
            "command": "bump_amounts",
            "args": ["x", 2],
            "kwargs": {"since": "2026", "fail": True, "report": None, "dry": False, "verbosity": 2, "amount": "5"},
        },
    )
    unknown = LogEntryFactory(context_type="unknown", context={"db_user": "app", "application_name": "psql"})
    custom = LogEntryFactory(context_type="celery-task", context={"task": "sync", "nested": {"x": 1}})
    odd = LogEntryFactory(context_type="http-request", context=["not", "a", "dict"])
    assert formatter.format_context(request) == "POST /admin/x/"
    assert formatter.format_context(command) == "bump_amounts x 2 amount=5 fail since=2026"
    assert formatter.format_context(unknown) == "app (psql)"
    assert formatter.format_context(custom) == "task: sync"
    assert formatter.format_context(odd) == ""


def test_formatter_summary_lists_the_first_fields(invoice, latest_entry):
    formatter = DiffFormatter()
    assert formatter.summarize(latest_entry(action="UPDATE")) == "Status, Amount"
    assert formatter.summarize(latest_entry(action="INSERT", table_name="testapp_invoice")) == (
        "ID, Number, Status and 3 more"
    )


def test_formatter_object_label_for_existing_and_deleted_objects(invoice, user, latest_entry):
    with audit_context("test", performed_by=user):
        other = InvoiceFactory(number="GONE")
        other_pk = other.pk
        other.delete()
    formatter = formatter_for()
    entries = [latest_entry(object_id=str(invoice.pk)), latest_entry(object_id=str(other_pk))]
    formatter.prefetch(entries, related=False, objects=True)
    assert formatter.format_object(entries[0]) == DisplayValue(
        text="INV-1", url=f"/admin/testapp/invoice/{invoice.pk}/change/"
    )
    assert formatter.format_object(entries[1]) == DisplayValue(text=f"Invoice {other_pk} (deleted)", kind="deleted")


def test_formatter_object_with_invalid_primary_key_text_is_deleted_not_an_error(db):
    entry = LogEntryFactory(object_id="not-a-number")
    formatter = formatter_for()
    formatter.prefetch([entry], objects=True)
    assert formatter.format_object(entry).kind == "deleted"


# --- choosing the formatter --------------------------------------------------------


class ShoutingFormatter(DiffFormatter):
    def format_text(self, model_field, value):
        return DisplayValue(text=str(value).upper())


def test_conf_formatter_class_is_overridable(settings):
    settings.AUDIT_LOG_ADMIN_FORMATTER = "tests.admin.test_diff.ShoutingFormatter"
    assert conf.formatter_class is ShoutingFormatter


@pytest.mark.parametrize("value", ["tests.admin.test_diff.nothing_here", "tests.admin.test_diff.FIELDS"])
def test_conf_formatter_class_rejects_bad_settings(settings, value):
    settings.AUDIT_LOG_ADMIN_FORMATTER = value
    with pytest.raises(ImproperlyConfigured, match="AUDIT_LOG_ADMIN_FORMATTER"):
        conf.formatter_class  # noqa: B018


def test_conf_defaults(settings):
    assert conf.register is True
    assert conf.exact_count_limit == 10_000
    assert conf.formatter_class is DiffFormatter
    settings.AUDIT_LOG_ADMIN_EXACT_COUNT_LIMIT = 0
    assert conf.exact_count_limit == 1


@pytest.mark.django_db
def test_formatter_labels_a_column_django_leaves_quoted_by_its_field():
    thing = WeirdName.objects.create(camel="A", quoted=1)
    WeirdName.objects.filter(pk=thing.pk).update(quoted=2)
    update = thing.audit_logs.first()
    [row] = formatted(update).rows
    assert (row.column, row.label) == ("Quoted Col", "Quoted number")


# --- JSON key diffs, word diff spacing and labels, empty strings, field labels ---------------------


def keys_of(json_display):
    return [(key.path, key.op, key.old, key.new) for key in json_display.changed]


def test_formatter_json_change_shows_the_keys_that_changed(user):
    with audit_context("test", performed_by=user):
        thing = Awkward.objects.create(
            data={"roast": "medium-light", "origin": "Kenya", "dimensions": {"width": 10, "height": 5}, "old": 1}
        )
        thing.data = {"roast": "dark", "origin": "Kenya", "dimensions": {"width": 12, "height": 5}, "new": [1]}
        thing.save()
    row = rows_by_label(formatted(AuditLogEntry.objects.get(table_name="testapp_awkward", action="UPDATE")))["Data"]
    assert keys_of(row.json) == [
        ("dimensions.width", "changed", "10", "12"),
        ("new", "added", "", "[1]"),
        ("old", "removed", "1", ""),
        ("roast", "changed", '"medium-light"', '"dark"'),
    ]
    assert [(key.path, key.new) for key in row.json.unchanged] == [("dimensions.height", "5"), ("origin", '"Kenya"')]
    assert row.segments == ()


def test_formatter_json_change_of_lists_and_scalars_is_shown_side_by_side(user):
    with audit_context("test", performed_by=user):
        thing = Awkward.objects.create(data=[1, 2])
        thing.data = [1, 3]
        thing.save()
        thing.data = {"a": 1}
        thing.save()
    first, second = AuditLogEntry.objects.filter(table_name="testapp_awkward", action="UPDATE").order_by("id")
    for entry, old, new in (
        (first, "[\n  1,\n  2\n]", "[\n  1,\n  3\n]"),
        (second, "[\n  1,\n  3\n]", '{\n  "a": 1\n}'),
    ):
        row = rows_by_label(formatted(entry))["Data"]
        assert row.json is None
        assert (row.old, row.new) == (DisplayValue(text=old, kind="json"), DisplayValue(text=new, kind="json"))


def test_formatter_json_change_of_odd_data_is_shown_side_by_side_or_bounded(db):
    awkward = ContentType.objects.get_for_model(Awkward)
    big = {str(n): n for n in range(600)}
    entry = LogEntryFactory(
        content_type=awkward, table_name="testapp_awkward", changes={"data": [big, {**big, "0": -1}]}
    )
    row = rows_by_label(formatted(entry))["Data"]
    assert row.json is None  # more keys than json_max_keys: the documents, as before
    assert row.new.kind == "json"
    long = {"a": "x" * 5_000}
    entry = LogEntryFactory(content_type=awkward, table_name="testapp_awkward", changes={"data": [long, {"a": 1}]})
    [key] = rows_by_label(formatted(entry))["Data"].json.changed
    assert key.old == '"' + "x" * 999 + "… (4002 more characters)"
    # A column no field has any more: its objects are compared too; not a JSON field: never.
    entry = LogEntryFactory(changes={"gone": [{"a": 1}, {"a": 2}], "number": [{"a": 1}, {"a": 2}]})
    rows = rows_by_label(formatted(entry))
    assert keys_of(rows["gone"].json) == [("a", "changed", "1", "2")]
    assert rows["Number"].json is None


def test_formatter_json_change_of_a_masked_column_is_hidden(db):
    formatter = formatter_for()
    entry = LogEntryFactory(
        content_type=ContentType.objects.get_for_model(Customer),
        table_name="testapp_customer",
        changes={"password": [{"a": 1}, {"a": 2}]},
    )
    row = formatted(entry, formatter).rows[0]
    assert row.json is None
    assert row.new.kind == "masked"


def test_formatter_json_change_hook_that_fails_falls_back_to_side_by_side(db):
    class Failing(DiffFormatter):
        def format_json_change(self, model_field, old, new):
            raise ValueError("odd data")

    request = RequestFactory().get("/")
    request.user = UserFactory(is_staff=True, is_superuser=True)
    entry = LogEntryFactory(
        content_type=ContentType.objects.get_for_model(Awkward),
        table_name="testapp_awkward",
        changes={"data": [{"a": 1}, {"a": 2}]},
    )
    row = formatted(entry, Failing(request=request, admin_site=site)).rows[0]
    assert row.json is None
    assert row.new.kind == "json"


def test_history_view_shows_json_keys_escaped(superuser_client, user, history_url):
    with audit_context("test", performed_by=user):
        thing = Awkward.objects.create(data={"<b>key</b>": "<i>old</i>", "same": 1})
        thing.data = {"<b>key</b>": "<i>new</i>", "same": 1}
        thing.save()
    content = superuser_client.get(history_url(thing)).content.decode()
    assert '<tr class="audit-log-key audit-log-key-changed">' in content
    assert "&quot;&lt;b&gt;key&lt;/b&gt;&quot;" in content
    assert "<i>" not in content
    assert '<ins class="audit-log-json-value">&quot;&lt;i&gt;new&lt;/i&gt;&quot;</ins>' in content
    assert "1 unchanged key" in content


def inline_diff_html(content):
    return re.search(r'<td colspan="2" class="audit-log-inline-diff".*?</td>', content, re.S).group(0)


def visible_text(html):
    html = re.sub(r'<span class="visually-hidden">.*?</span>', "", html)
    html = re.sub(r'<div class="audit-log-legend".*?</div>', "", html)
    return unescape(re.sub(r"<[^>]+>", "", html))


def test_history_view_word_diff_keeps_a_space_between_removed_and_added_words(superuser_client, user, history_url):
    with audit_context("test", performed_by=user):
        invoice = InvoiceFactory(notes="A lemon tart")
        invoice.notes = "A ripe peach tart"
        invoice.save()
    cell = inline_diff_html(superuser_client.get(history_url(invoice)).content.decode())
    assert visible_text(cell) == "A lemon ripe peach tart"
    assert re.search(r"<del>lemon</del>.*?</span> <span", cell)


def test_history_view_word_diff_has_a_legend_and_labels_for_screen_readers(superuser_client, user, history_url):
    with audit_context("test", performed_by=user):
        invoice = InvoiceFactory(notes="A lemon tart")
        invoice.notes = "A peach tart"
        invoice.save()
    cell = inline_diff_html(superuser_client.get(history_url(invoice)).content.decode())
    legend = re.search(r'<div class="audit-log-legend" aria-hidden="true">(.*?)</div>', cell).group(1)
    assert legend == '<span class="audit-log-legend-del">Before</span> <span class="audit-log-legend-ins">After</span>'
    assert '<span class="visually-hidden">[Before: </span><del>lemon</del>' in cell
    assert '<span class="visually-hidden">[After: </span><ins>peach</ins>' in cell


def test_formatter_empty_string_is_shown_as_empty_not_as_null(user):
    with audit_context("test", performed_by=user):
        invoice = InvoiceFactory(number="INV-E", notes="")
        invoice.notes = "now some"
        invoice.save()
    created, changed = AuditLogEntry.objects.filter(table_name="testapp_invoice").order_by("id")
    empty = DisplayValue(text="empty", kind="blank")
    assert rows_by_label(formatted(created))["Notes"].new == empty
    assert rows_by_label(formatted(changed))["Notes"].old == empty
    formatter = DiffFormatter(admin_site=site)
    assert formatter.format_value(models.CharField(), None) == DisplayValue(text="-", kind="empty")
    # Every path a string can take: text, a choice that has no "" option, a vanished column, other fields.
    assert formatter.format_value(models.CharField(), "") == empty
    assert formatter.format_value(models.CharField(choices=[("a", "A")]), "") == empty
    assert formatter.format_value(None, "") == empty
    assert formatter.format_value(models.UUIDField(), "") == empty
    assert formatter.format_value(models.CharField(choices=[("", "Unknown")]), "").text == "Unknown"
    assert formatter.format_value(ArrayField(models.CharField()), ["", "b"]).text == "empty, b"


def test_history_and_entry_page_show_an_empty_string_visibly(superuser_client, user, history_url, entry_url):
    with audit_context("test", performed_by=user):
        invoice = InvoiceFactory(number="INV-E", notes="")
    entry = AuditLogEntry.objects.get(table_name="testapp_invoice")
    for url in (history_url(invoice), entry_url(entry)):
        content = superuser_client.get(url).content.decode()
        assert '<span class="audit-log-value audit-log-blank">empty</span>' in content


def test_revert_page_shows_an_empty_string_visibly(superuser_client, user):
    with audit_context("test", performed_by=user):
        invoice = InvoiceFactory(number="INV-E", notes="")
        invoice.notes = "filled in"
        invoice.save()
    changed = AuditLogEntry.objects.filter(table_name="testapp_invoice").order_by("id").last()
    url = reverse("admin:testapp_invoice_audit_revert", args=[invoice.pk, changed.pk])
    content = superuser_client.get(url).content.decode()
    assert '<span class="audit-log-value audit-log-blank">empty</span>' in content


@pytest.mark.parametrize(
    "factory", [lambda: InvoiceFactory(), lambda: UUIDThing.objects.create(name="u"), lambda: BigThing.objects.create()]
)
def test_formatter_labels_every_id_field_id(user, factory):
    with audit_context("test", performed_by=user):
        obj = factory()
    diff = formatted(AuditLogEntry.objects.get(object_id=str(obj.pk), action="INSERT"))
    assert "ID" in rows_by_label(diff)
    assert "Id" not in rows_by_label(diff)


def test_field_label_is_the_capitalized_verbose_name():
    assert field_label(Invoice._meta.get_field("customer")) == "Customer"
    assert field_label(WeirdName._meta.get_field("quoted")) == "Quoted number"
    assert field_label(UUIDThing._meta.get_field("id")) == "ID"
    assert field_label(models.UUIDField(name="id", verbose_name="identifier")) == "Identifier"
