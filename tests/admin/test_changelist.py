import datetime
import uuid

import pytest
from django.contrib.admin import site
from django.contrib.contenttypes.models import ContentType
from django.contrib.messages import get_messages
from django.db import connection
from django.utils import timezone

from audit_log.context import audit_context
from audit_log_admin.admin import LogEntryAdmin
from tests.admin.factories import LogEntryFactory
from tests.factories import BigThingFactory, CustomerFactory, InvoiceFactory, UserFactory
from tests.testapp.models import AuditLogEntry, Customer, Invoice


def results(response):
    assert response.status_code == 200, response.get("Location")
    return [entry.pk for entry in response.context["cl"].result_list]


def ids(**filters):
    return list(AuditLogEntry.objects.filter(**filters).values_list("pk", flat=True))


def _ct(model):
    return ContentType.objects.get_for_model(model).pk


# --- the list ---------------------------------------------------------------------------


def test_changelist_shows_entries_newest_first_with_every_column(superuser_client, invoice, log_url, user):
    response = superuser_client.get(log_url())
    assert results(response) == ids()
    content = response.content.decode()
    for header in ("Date/time", "Action", "Model", "Object", "User", "Context", "Changes"):
        assert f">{header}</" in content
    assert f'<a href="/admin/testapp/invoice/{invoice.pk}/change/">INV-1</a>' in content
    assert f'<a href="/admin/auth/user/{user.pk}/change/">alice</a>' in content
    assert '<span class="audit-log-action audit-log-action-update">Changed</span>' in content
    assert "Status, Amount" in content
    assert "ID, Number, Status and 3 more" in content
    assert "task: fixture" in content


def test_changelist_object_column_for_deleted_and_unregistered_objects(superuser_client, user, log_url):
    with audit_context("test", performed_by=user):
        gone = InvoiceFactory(number="GONE")
        gone_pk = gone.pk
        gone.delete()
        big = BigThingFactory(name="not in the admin")
    content = superuser_client.get(log_url()).content.decode()
    assert f"Invoice {gone_pk} (deleted)" in content
    assert f"BigThing object ({big.pk})" in content  # str() of a model without __str__, unlinked
    assert "/admin/testapp/bigthing/" not in content


def test_changelist_entries_of_models_that_no_longer_exist(superuser_client, log_url):
    LogEntryFactory(content_type=ContentType.objects.create(app_label="gone", model="thing"), table_name="gone_tbl")
    LogEntryFactory(content_type_id=987654, table_name="lost_tbl", object_id="7")
    content = superuser_client.get(log_url()).content.decode()
    assert "gone_tbl 1 (deleted)" in content
    assert "lost_tbl 7 (deleted)" in content


def test_changelist_escapes_object_labels_and_context(superuser_client, user, log_url):
    with audit_context("test", performed_by=user, context={"x": "<script>alert(2)</script>"}):
        CustomerFactory(name="<script>alert(1)</script>")
    content = superuser_client.get(log_url()).content.decode()
    assert "<script>alert(" not in content
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in content
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in content


def test_changelist_shows_context_type_labels(superuser_client, log_url):
    LogEntryFactory(context_type="celery-task", context={"task": "sync"})
    content = superuser_client.get(log_url()).content.decode()
    assert "Celery task" in content


@pytest.mark.parametrize("updates", [1, 120])
def test_changelist_runs_a_fixed_number_of_queries_per_page(
    superuser_client, invoice, customer, user, log_url, django_assert_num_queries, updates
):
    with audit_context("test", performed_by=user):
        for number in range(updates):
            invoice.notes = customer.email = f"{number}@example.com"
            invoice.save()
            customer.save()
    superuser_client.get(log_url())  # warm the content-type cache
    # session, user, capped count, the page (user and content type joined), the date hierarchy's
    # first and last entry, then the page's logged objects: one query per model (Invoice, Customer); the newest seal
    with django_assert_num_queries(8):
        response = superuser_client.get(log_url())
    assert len(response.context["cl"].result_list) == min(2 * updates + 4, 50)


def test_changelist_query_count_for_a_non_superuser(client, invoice, log_url, make_staff, django_assert_num_queries):
    permissions = ("testapp.view_auditlogentry", "testapp.view_invoice", "testapp.view_customer")
    client.force_login(make_staff("auditor", *permissions))
    client.get(log_url())
    # as for a superuser, plus the user's and its groups' permissions (which entries they may see costs none)
    with django_assert_num_queries(10):
        response = client.get(log_url())
    assert response.status_code == 200
    assert results(response) == ids()


def test_changelist_is_ordered_by_id_only(superuser_client, invoice, log_url):
    response = superuser_client.get(log_url(o="1"))
    assert results(response) == ids()
    assert 'class="sortable' not in response.content.decode()


# --- counting ------------------------------------------------------------------------------


def test_changelist_counts_exactly_up_to_the_limit(superuser_client, invoice, log_url, settings):
    settings.AUDIT_LOG_ADMIN_EXACT_COUNT_LIMIT = 4
    response = superuser_client.get(log_url())
    assert response.context["cl"].result_count == 4
    assert "4 audit log entries" in response.content.decode()


def test_changelist_filtered_count_above_the_limit_is_a_lower_bound(superuser_client, invoice, log_url, settings):
    settings.AUDIT_LOG_ADMIN_EXACT_COUNT_LIMIT = 2
    response = superuser_client.get(log_url(model=_ct(Invoice)))
    assert response.context["cl"].paginator.count_is_lower_bound
    content = response.content.decode()
    assert "more than 2 audit log entries" in content
    assert " results (" not in content  # the search form's count would be wrong


def test_changelist_unfiltered_count_above_the_limit_is_the_table_estimate(
    superuser_client, invoice, log_url, settings
):
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {connection.ops.quote_name(AuditLogEntry._meta.db_table)}")
    settings.AUDIT_LOG_ADMIN_EXACT_COUNT_LIMIT = 2
    response = superuser_client.get(log_url())
    assert response.context["cl"].paginator.count_is_estimate
    assert "about 4 audit log entries" in response.content.decode()


# --- filters -----------------------------------------------------------------------------------


def test_filter_by_model(superuser_client, invoice, log_url):
    assert results(superuser_client.get(log_url(model=_ct(Customer)))) == ids(table_name="testapp_customer")


def test_filter_by_action(superuser_client, invoice, log_url):
    assert results(superuser_client.get(log_url(action="UPDATE"))) == ids(action="UPDATE")


def test_filter_by_user(superuser_client, invoice, other_user, log_url):
    with audit_context("test", performed_by=other_user):
        CustomerFactory()
    assert results(superuser_client.get(log_url(user="bob"))) == ids(performed_by=other_user)
    assert results(superuser_client.get(log_url(user="nobody"))) == []


def test_filter_by_user_finds_renamed_users_by_id(superuser_client, invoice, user, log_url):
    user.username = "alice2"
    user.save()
    assert results(superuser_client.get(log_url(user="alice2"))) == ids(performed_by=user)


def test_filter_by_user_finds_deleted_users_by_name(superuser_client, invoice, user, log_url):
    expected = ids(performed_by=user)
    user.delete()
    assert results(superuser_client.get(log_url(user="alice"))) == expected


def test_filter_by_time_range(superuser_client, log_url):
    now = timezone.now()
    old = LogEntryFactory(at=now - datetime.timedelta(days=3))
    middle = LogEntryFactory(at=now - datetime.timedelta(days=2))
    LogEntryFactory(at=now)
    local = timezone.localtime(now)
    after = (local - datetime.timedelta(days=2, hours=1)).strftime("%Y-%m-%dT%H:%M")
    before = (local - datetime.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    assert results(superuser_client.get(log_url(at_after=after, at_before=before))) == [middle.pk]
    assert old.pk in results(superuser_client.get(log_url(at_before=before)))
    later = (local + datetime.timedelta(minutes=1)).strftime("%Y-%m-%d %H:%M:%S")
    assert results(superuser_client.get(log_url(at_after=later, at_before=""), follow=True)) == []


def test_filter_by_time_range_bounds_the_ids_it_scans(superuser_client, log_url, django_assert_num_queries):
    now = timezone.now()
    LogEntryFactory(at=now - datetime.timedelta(days=3))
    superuser_client.get(log_url())
    day = (timezone.localtime(now) - datetime.timedelta(days=4)).strftime("%Y-%m-%dT%H:%M")
    # session, user, the range's lowest and highest id, count, page, date hierarchy, invoices, the newest seal
    with django_assert_num_queries(8) as queries:
        superuser_client.get(log_url(at_after=day))
    page = [q["sql"] for q in queries.captured_queries if "ORDER BY" in q["sql"] and '"at" >=' in q["sql"]]
    assert len(page) == 1
    assert '"id" BETWEEN' in page[0]


def test_filter_by_object_id(superuser_client, invoice, log_url):
    expected = ids(object_id=str(invoice.pk))
    assert results(superuser_client.get(log_url(object_id=str(invoice.pk)))) == expected


def test_filter_by_context_type(superuser_client, log_url):
    entry = LogEntryFactory(context_type="celery-task")
    LogEntryFactory(context_type="other")
    response = superuser_client.get(log_url(context_type="celery-task"))
    assert results(response) == [entry.pk]
    assert '<option value="celery-task" label="Celery task">' in response.content.decode()  # suggested


def test_filter_by_request_path(superuser_client, log_url):
    entry = LogEntryFactory(
        context_type="http-request", context={"method": "POST", "path": "/admin/testapp/invoice/1/"}
    )
    LogEntryFactory(context_type="http-request", context={"method": "POST", "path": "/shop/"})
    LogEntryFactory(context={"nothing": "here"})
    assert results(superuser_client.get(log_url(path="/admin/testapp/"))) == [entry.pk]


def test_filter_by_changed_field(superuser_client, invoice, log_url):
    expected = ids(changes__has_key="amount")
    assert results(superuser_client.get(log_url(changed="amount"))) == expected
    # a foreign key's field name finds its column, and creations record every column
    assert results(superuser_client.get(log_url(changed="customer"))) == ids(changes__has_key="customer_id")
    assert results(superuser_client.get(log_url(changed="customer", model=_ct(Invoice)))) == ids(
        changes__has_key="customer_id"
    )


def test_filter_by_changed_column_no_longer_on_the_model(superuser_client, log_url):
    entry = LogEntryFactory(changes={"legacy": [1, 2]})
    assert results(superuser_client.get(log_url(changed="legacy"))) == [entry.pk]


def test_filter_by_transaction(superuser_client, log_url):
    # (every write of a test shares the test's transaction, so these entries are made up)
    together = [LogEntryFactory(transaction_id=42), LogEntryFactory(transaction_id=42)]
    LogEntryFactory(transaction_id=43)
    assert results(superuser_client.get(log_url(transaction="42"))) == [together[1].pk, together[0].pk]


def test_filter_by_context_id(superuser_client, invoice, user, log_url):
    with audit_context("test", performed_by=user):
        CustomerFactory()
    entry = AuditLogEntry.objects.order_by("-id").first()
    assert results(superuser_client.get(log_url(context_id=entry.context_id))) == ids(context_id=entry.context_id)


def test_filters_combine(superuser_client, invoice, log_url):
    expected = ids(action="UPDATE", changes__has_key="amount")
    assert results(superuser_client.get(log_url(action="UPDATE", changed="amount", model=_ct(Invoice)))) == expected


def test_filter_form_keeps_other_parameters_and_offers_a_clear_link(superuser_client, invoice, log_url):
    response = superuser_client.get(log_url(action="UPDATE", q=str(invoice.pk), at__year="2026"))
    # Only the filter form itself: Django 6's search form carries the filters as hidden inputs too.
    content = response.content.decode().split('class="audit-log-filter-form"')[1].split("</form>")[0]
    assert f'<input type="hidden" name="q" value="{invoice.pk}">' in content
    assert '<input type="hidden" name="at__year" value="2026">' in content
    assert '<input type="hidden" name="action"' not in content
    assert '<option value="UPDATE" selected>' in content
    assert f'href="?at__year=2026&amp;q={invoice.pk}" class="audit-log-filter-clear"' in content


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"transaction": "abc"}, "Enter a whole number."),
        ({"transaction": "-1"}, "Ensure this value is greater than or equal to 0."),
        ({"transaction": str(2**63)}, "Ensure this value is less than or equal to"),
        ({"action": "EXPLODE"}, "Select a valid choice."),
        ({"model": "987654"}, "Select a valid choice."),
        ({"at_after": "yesterday-ish"}, "Enter a valid date/time."),
        ({"context_id": "not-a-uuid"}, "Enter a valid UUID."),
        ({"object_id": "nul\x00byte"}, "Null characters are not allowed."),
    ],
)
def test_filter_invalid_values_show_a_form_error_not_e1(superuser_client, invoice, log_url, params, error):
    response = superuser_client.get(log_url(**params))
    assert response.status_code == 200
    assert results(response) == []
    content = response.content.decode()
    assert error in content
    assert "errorlist" in content
    assert any("Invalid filter" in str(message) for message in get_messages(response.wsgi_request))


def test_filter_unknown_parameters_still_get_djangos_e1(superuser_client, log_url):
    response = superuser_client.get(log_url(bogus="1"))
    assert response.status_code == 302
    assert response["Location"].endswith("?e=1")


# --- search and date hierarchy ------------------------------------------------------------


def test_search_matches_object_ids_exactly(superuser_client, user, log_url):
    with audit_context("test", performed_by=user):
        InvoiceFactory.create_batch(12)
    assert results(superuser_client.get(log_url(q="1"))) == ids(object_id="1")


def test_search_matches_the_context(superuser_client, log_url):
    entry = LogEntryFactory(context_type="http-request", context={"method": "POST", "path": "/shop/cart/"})
    LogEntryFactory(context={"path": "/elsewhere/"})
    assert results(superuser_client.get(log_url(q="shop/CART"))) == [entry.pk]


def test_search_matches_a_context_id(superuser_client, log_url):
    context_id = uuid.uuid4()
    entry = LogEntryFactory(context_id=context_id)
    LogEntryFactory(context_id=uuid.uuid4())
    assert results(superuser_client.get(log_url(q=str(context_id)))) == [entry.pk]


def test_date_hierarchy_lists_years_between_the_first_and_last_entry(superuser_client, log_url):
    tz = timezone.get_current_timezone()
    LogEntryFactory(at=datetime.datetime(2023, 5, 1, 12, tzinfo=tz))
    LogEntryFactory(at=datetime.datetime(2025, 7, 1, 12, tzinfo=tz))
    content = superuser_client.get(log_url()).content.decode()
    for year in ("2023", "2024", "2025"):
        assert f'href="?at__year={year}">{year}</a>' in content


def test_date_hierarchy_months_and_days(superuser_client, log_url):
    tz = timezone.get_current_timezone()
    first = LogEntryFactory(at=datetime.datetime(2024, 11, 20, 12, tzinfo=tz))
    LogEntryFactory(at=datetime.datetime(2025, 2, 3, 12, tzinfo=tz))
    months = superuser_client.get(log_url(at__year="2024")).content.decode()
    assert 'href="?at__month=11&amp;at__year=2024">November 2024</a>' in months
    assert "October 2024" not in months  # before the first entry
    days = superuser_client.get(log_url(at__year="2024", at__month="11"))
    content = days.content.decode()
    assert "November 20</a>" in content
    assert "November 19</a>" not in content
    assert results(days) == [first.pk]
    day = superuser_client.get(log_url(at__year="2024", at__month="11", at__day="20"))
    assert results(day) == [first.pk]
    assert "November 20" in day.content.decode()


def test_date_hierarchy_drills_into_a_single_month(superuser_client, invoice, log_url):
    today = timezone.localdate()
    content = superuser_client.get(log_url()).content.decode()
    assert f"{today:%B} {today.day}</a>" in content


def test_date_hierarchy_without_entries_is_hidden(superuser_client, log_url):
    assert 'class="toplinks"' not in superuser_client.get(log_url()).content.decode()


def test_date_hierarchy_never_reads_the_whole_log(superuser_client, invoice, log_url, django_assert_num_queries):
    today = timezone.localdate()
    url = log_url(at__year=str(today.year), at__month=str(today.month))
    superuser_client.get(url)
    # session, user, the month's lowest and highest id, count, page, the log's first and last entry,
    # then the page's invoices and customers, and the newest seal
    with django_assert_num_queries(9) as queries:
        response = superuser_client.get(url)
    assert results(response) == ids()
    for query in queries.captured_queries:
        sql = query["sql"].upper()
        assert "DISTINCT" not in sql
        assert "DATE_TRUNC" not in sql
        if "MIN(" in sql:
            assert '"AT" >=' in sql  # only the month's entries


def test_date_hierarchy_day_is_bounded_by_id(superuser_client, log_url, django_assert_num_queries):
    tz = timezone.get_current_timezone()
    inside = LogEntryFactory(at=datetime.datetime(2025, 6, 1, 12, tzinfo=tz))
    LogEntryFactory(at=datetime.datetime(2025, 6, 2, 12, tzinfo=tz))
    url = log_url(at__year="2025", at__month="6", at__day="1")
    superuser_client.get(url)
    with django_assert_num_queries(8) as queries:  # 7, and the newest seal
        response = superuser_client.get(url)
    assert results(response) == [inside.pk]
    page = [q["sql"] for q in queries.captured_queries if "ORDER BY" in q["sql"] and '"at" >=' in q["sql"]]
    assert f'"id" BETWEEN {inside.pk} AND {inside.pk}' in page[0]


def test_date_hierarchy_empty_month_needs_no_count(superuser_client, invoice, log_url, django_assert_num_queries):
    superuser_client.get(log_url(at__year="2020", at__month="1"))
    # session, user, the month's (missing) ids, the log's first and last entry, the newest seal:
    # no count, no page query
    with django_assert_num_queries(5):
        response = superuser_client.get(log_url(at__year="2020", at__month="1"))
    assert results(response) == []


# --- read-only for everybody ----------------------------------------------------------------


def test_log_entries_cannot_be_added_changed_or_deleted_even_by_superusers(superuser_client, invoice, entry_url):
    entry = AuditLogEntry.objects.first()
    assert superuser_client.get("/admin/testapp/auditlogentry/add/").status_code == 403
    assert superuser_client.post(entry_url(entry), {"object_id": "x", "action": "DELETE"}).status_code == 403
    assert superuser_client.get(f"/admin/testapp/auditlogentry/{entry.pk}/delete/").status_code == 403
    assert superuser_client.post(f"/admin/testapp/auditlogentry/{entry.pk}/delete/", {"post": "yes"}).status_code == 403
    entry.refresh_from_db()
    assert entry.action == "INSERT" or entry.action == "UPDATE"
    assert AuditLogEntry.objects.count() == 4


def test_changelist_has_no_add_button_and_no_actions(superuser_client, invoice, log_url):
    content = superuser_client.get(log_url()).content.decode()
    assert "/admin/testapp/auditlogentry/add/" not in content
    assert 'class="actions"' not in content
    assert 'name="_selected_action"' not in content


def test_changelist_needs_view_permission_on_the_entry_model(client, invoice, log_url, make_staff):
    client.force_login(make_staff("clerk", "testapp.view_invoice"))
    assert client.get(log_url()).status_code == 403


def test_log_entry_admin_permissions_are_false_for_superusers(rf, superuser):
    model_admin = site.get_model_admin(AuditLogEntry)
    request = rf.get("/")
    request.user = superuser
    assert isinstance(model_admin, LogEntryAdmin)
    assert model_admin.has_view_permission(request)
    assert not model_admin.has_add_permission(request)
    assert not model_admin.has_change_permission(request)
    assert not model_admin.has_delete_permission(request)


def test_changelist_for_a_plain_user_redirects_to_login(db, client, log_url):
    UserFactory(username="plain")
    assert client.get(log_url()).status_code == 302
