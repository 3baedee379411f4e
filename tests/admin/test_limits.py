"""The log pages never run unbounded: a statement timeout, a bounded search, date-hierarchy values in range."""

import contextlib
import datetime

import pytest
from django.contrib import admin
from django.contrib.messages import get_messages
from django.core.exceptions import ImproperlyConfigured
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from audit_log_admin.conf import conf
from audit_log_admin.limits import LogQueryTimeout, invalid_date_hierarchy, statement_timeout
from tests.admin.factories import LogEntryFactory
from tests.testapp.models import AuditLogEntry, Invoice

SLEEP = "(SELECT true FROM pg_sleep(0.3))"  # an InitPlan: each query sleeps once


def results(response):
    assert response.status_code == 200, response.get("Location")
    return [entry.pk for entry in response.context["cl"].result_list]


def said(response):
    return [str(message) for message in get_messages(response.wsgi_request)]


@pytest.fixture
def slow_log(monkeypatch):
    """Make every query of the log admin sleep, and the statement timeout short."""
    model_admin = admin.site.get_model_admin(AuditLogEntry)
    original = model_admin.get_queryset
    monkeypatch.setattr(model_admin, "get_queryset", lambda request: original(request).extra(where=[SLEEP]))
    return model_admin


@pytest.fixture
def short_timeout(settings):
    settings.AUDIT_LOG_ADMIN_STATEMENT_TIMEOUT = 0.05


def statements_sent(action):
    """Run ``action`` and return the SQL the driver was handed (after every execute wrapper)."""
    sent = []

    def record(execute, sql, params, many, context):
        sent.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        action()
    return sent


# --- the setting ------------------------------------------------------------------------------


def test_conf_statement_timeout_default_and_off(settings):
    assert conf.statement_timeout == 5
    assert conf.statement_timeout_ms == 5000
    settings.AUDIT_LOG_ADMIN_STATEMENT_TIMEOUT = 0.0004
    assert conf.statement_timeout_ms == 1
    settings.AUDIT_LOG_ADMIN_STATEMENT_TIMEOUT = datetime.timedelta(seconds=2)
    assert conf.statement_timeout_ms == 2000
    for off in (None, 0):
        settings.AUDIT_LOG_ADMIN_STATEMENT_TIMEOUT = off
        assert conf.statement_timeout is None
        assert conf.statement_timeout_ms is None


@pytest.mark.parametrize("value", ["5", -1, float("inf"), True])
def test_conf_statement_timeout_rejects_bad_settings(settings, value):
    settings.AUDIT_LOG_ADMIN_STATEMENT_TIMEOUT = value
    with pytest.raises(ImproperlyConfigured, match="AUDIT_LOG_ADMIN_STATEMENT_TIMEOUT"):
        conf.statement_timeout  # noqa: B018


# --- the timeout --------------------------------------------------------------------------------


def test_statement_timeout_sets_local_in_the_same_query_string(db):
    LogEntryFactory()
    with statement_timeout("default"):
        sent = statements_sent(lambda: list(AuditLogEntry.objects.all()))
    # Inside a transaction (the test's): a savepoint to roll back to if the query is cancelled.
    assert len(sent) == 1
    assert sent[0].startswith("SAVEPOINT audit_log_admin_timeout; SET LOCAL statement_timeout = 5000; SELECT ")


@pytest.mark.django_db(transaction=True)
def test_statement_timeout_in_autocommit_needs_no_savepoint_and_does_not_last(db):
    LogEntryFactory()
    with statement_timeout("default"):
        sent = statements_sent(lambda: list(AuditLogEntry.objects.all()))
    assert sent[0].startswith("SET LOCAL statement_timeout = 5000; SELECT ")
    with connection.cursor() as cursor:
        cursor.execute("SHOW statement_timeout")
        assert cursor.fetchone()[0] == "0"


def test_statement_timeout_leaves_writes_and_other_statements_alone(db, settings):
    with statement_timeout("default"):
        sent = statements_sent(lambda: Invoice.objects.create(number="X"))
        sent += statements_sent(lambda: connection.cursor().execute("SHOW statement_timeout"))
    assert not any("statement_timeout =" in sql for sql in sent)
    settings.AUDIT_LOG_ADMIN_STATEMENT_TIMEOUT = None
    with statement_timeout("default"):
        assert "statement_timeout" not in statements_sent(lambda: list(AuditLogEntry.objects.all()))[0]


def test_statement_timeout_cancels_a_slow_query_and_the_transaction_goes_on(db, short_timeout):
    with pytest.raises(LogQueryTimeout), statement_timeout("default"):
        list(AuditLogEntry.objects.extra(where=[SLEEP]))
    assert AuditLogEntry.objects.count() == 0  # still usable
    with connection.cursor() as cursor:
        cursor.execute("SHOW statement_timeout")
        assert cursor.fetchone()[0] == "0"  # rolled back with the savepoint


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("in_transaction", [False, True])
def test_statement_timeout_with_one_statement_per_query(db, short_timeout, monkeypatch, in_transaction):
    # psycopg 3's server-side binding takes one statement per query: the setting is sent on its own.
    monkeypatch.setitem(connection.settings_dict["OPTIONS"], "server_side_binding", True)
    with transaction.atomic() if in_transaction else contextlib.nullcontext():
        with pytest.raises(LogQueryTimeout), statement_timeout("default"):
            list(AuditLogEntry.objects.extra(where=[SLEEP]))
        assert AuditLogEntry.objects.count() == 0
        with statement_timeout("default"):
            assert list(AuditLogEntry.objects.all()) == []


def test_changelist_stopped_by_the_timeout_says_so(superuser_client, invoice, log_url, slow_log, short_timeout):
    response = superuser_client.get(log_url())
    assert results(response) == []
    assert any("took longer than 0.05 seconds" in message for message in said(response))
    assert AuditLogEntry.objects.count() == 4  # the test's transaction goes on


@pytest.mark.django_db(transaction=True)
def test_changelist_stopped_by_the_timeout_in_autocommit(superuser_client, invoice, log_url, slow_log, short_timeout):
    day = timezone.localtime().strftime("%Y-%m-%dT00:00")
    response = superuser_client.get(log_url(at_after=day, q="x"))  # filters and search time out before the page
    assert results(response) == []
    assert any("took longer than" in message for message in said(response))


def test_history_view_stopped_by_the_timeout_says_so(
    superuser_client, invoice, history_url, monkeypatch, short_timeout
):
    model_admin = admin.site.get_model_admin(Invoice)
    original = model_admin.get_audit_log_queryset
    monkeypatch.setattr(
        model_admin, "get_audit_log_queryset", lambda request, obj: original(request, obj).extra(where=[SLEEP])
    )
    response = superuser_client.get(history_url(invoice))
    assert response.status_code == 200
    assert response.context["entries"] == []
    assert "took longer than" in response.content.decode()


def test_entry_page_lists_no_transaction_entries_when_they_time_out(
    superuser_client, invoice, entry_url, slow_log, short_timeout
):
    response = superuser_client.get(entry_url(AuditLogEntry.objects.first()))
    assert response.status_code == 200
    assert response.context["audit_log"].same_transaction == []
    assert "The other entries of this transaction took too long to find." in response.content.decode()


# --- search -------------------------------------------------------------------------------------


def test_search_keeps_its_first_words_and_says_so(superuser_client, log_url):
    entry = LogEntryFactory(context={"path": "/a/b/c/d/e/"})
    response = superuser_client.get(log_url(q="/a/ /b/ /c/ /d/ /e/ nothing-matches-this"))
    assert results(response) == [entry.pk]
    assert "Only the first 5 words were searched for." in said(response)


def test_search_of_a_list_larger_than_the_limit_is_refused_until_narrowed(superuser_client, log_url, monkeypatch):
    monkeypatch.setattr(admin.site.get_model_admin(AuditLogEntry), "search_max_entries", 2)
    entries = [LogEntryFactory(context={"path": "/shop/"}, transaction_id=7) for _ in range(2)]
    LogEntryFactory(context={"path": "/shop/"}, transaction_id=8)
    response = superuser_client.get(log_url(q="shop"))
    assert results(response) == []
    assert any(message.startswith("Not searched: the list holds more than 2 entries.") for message in said(response))
    assert results(superuser_client.get(log_url(q="shop", transaction="7"))) == [entries[1].pk, entries[0].pk]


def test_search_costs_one_query_to_size_the_list(superuser_client, invoice, log_url, monkeypatch):
    url = log_url(q="fixture")
    superuser_client.get(url)
    with CaptureQueriesContext(connection) as bounded:
        response = superuser_client.get(url)
    assert len(results(response)) == 3
    monkeypatch.setattr(admin.site.get_model_admin(AuditLogEntry), "search_max_entries", None)
    with CaptureQueriesContext(connection) as unbounded:
        superuser_client.get(url)
    # session, user, count, page, the date hierarchy's first and last entry, invoices, the newest seal;
    # and with the limit, the size of the list searched (it reads at most search_max_entries + 1 entries)
    assert (len(unbounded), len(bounded)) == (7, 8)


def test_search_help_text_states_the_limits(superuser_client, log_url):
    content = superuser_client.get(log_url()).content.decode()
    assert "up to 5 words" in content
    assert "Narrow a list of more than 100,000 entries first" in content


# --- the date hierarchy ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "dropped"),
    [
        ({"at__year": "9999", "at__month": "12"}, ["at__year", "at__month"]),
        ({"at__year": "9999", "at__month": "12", "at__day": "31"}, ["at__year", "at__month", "at__day"]),
        ({"at__year": "9999", "at__month": "11"}, []),
        ({"at__year": "9999"}, ["at__year"]),
        ({"at__year": "0"}, ["at__year"]),
        ({"at__year": "10000"}, ["at__year"]),
        ({"at__year": "-1"}, ["at__year"]),
        ({"at__year": "abc"}, ["at__year"]),
        ({"at__year": "9" * 5000}, ["at__year"]),
        ({"at__year": "2025", "at__month": "13"}, ["at__month"]),
        ({"at__year": "2025", "at__month": "2", "at__day": "30"}, ["at__day"]),
        ({"at__year": "2025", "at__day": "3"}, ["at__day"]),
        ({"at__month": "5"}, ["at__month"]),
        ({"at__year": ["2025", "x"]}, ["at__year"]),
        ({"at__year": "1", "at__month": "1", "at__day": "1"}, []),
    ],
)
def test_invalid_date_hierarchy_keeps_the_longest_valid_prefix(params, dropped):
    assert invalid_date_hierarchy("at", params) == dropped


@pytest.mark.parametrize(
    "params",
    [
        {"at__year": "9999", "at__month": "12"},
        {"at__year": "9999"},
        {"at__year": "0"},
        {"at__year": "10000"},
        {"at__year": "abc"},
        {"at__year": "9999", "at__month": "12", "at__day": "31"},
        {"at__month": "5"},
        {"at__day": "5"},
    ],
)
def test_date_hierarchy_out_of_range_is_ignored_with_a_message(superuser_client, invoice, log_url, params):
    response = superuser_client.get(log_url(**params))
    assert results(response) == list(AuditLogEntry.objects.values_list("pk", flat=True))
    assert any(message.startswith("Invalid date ignored: ") for message in said(response))
    assert not any(name.startswith("at__") for name in response.context["cl"].params)


def test_date_hierarchy_keeps_the_valid_year_of_an_invalid_month(superuser_client, invoice, log_url):
    year = timezone.localdate().year
    response = superuser_client.get(log_url(at__year=str(year), at__month="13"))
    assert len(results(response)) == 4
    assert said(response) == ["Invalid date ignored: at__month=13."]
    assert response.context["cl"].params == {"at__year": str(year)}
