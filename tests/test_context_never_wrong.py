"""Sequences that defeated the old context design: each must log the right context, or none.

The numbered cases of the "Context channel v2" issue, one or more tests each.
"""

import io

import pytest
from asgiref.sync import async_to_sync
from django.core.handlers.wsgi import WSGIHandler
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction
from django.test import AsyncClient, Client
from django.test.utils import override_settings

from audit_log.context import audit_context
from audit_log.payload import MAX_PAYLOAD_BYTES
from audit_log.request_info import MAX_QUERY_PARAMETERS, MAX_QUERY_VALUE_LENGTH
from tests.factories import InvoiceFactory
from tests.testapp.models import AuditLogContext, Invoice
from tests.wsgi import wsgi_request

URLS = override_settings(ROOT_URLCONF="tests.context_urls")
# Django 6.1 renamed transaction.savepoint() to savepoint_create().
SAVEPOINT_CREATE = getattr(transaction, "savepoint_create", None) or transaction.savepoint


def logged(entries):
    """``(label, context_type)`` per entry: the invoice number, or the action for changes without one."""
    return [(entry.changes.get("number") or entry.action, entry.context_type) for entry in entries()]


def install_triggers():
    call_command("audit_log_install", stdout=io.StringIO())


@pytest.fixture
def require_context(request):
    """Install the triggers with AUDIT_LOG_REQUIRE_CONTEXT as the test's parameter says, and restore them."""
    required = request.param
    with override_settings(AUDIT_LOG_REQUIRE_CONTEXT=required):
        install_triggers()
    yield required
    install_triggers()  # a transactional test keeps its DDL: put the default triggers back


def raw_update(notes):
    """A write that bypasses Django's cursor wrappers entirely (the DB-API cursor)."""
    with connection.connection.cursor() as cursor:
        cursor.execute("UPDATE testapp_invoice SET notes = %s", [notes])


# --- 1. nested contexts and rollbacks -----------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("require_context", [False, True], indirect=True)
def test_nested_contexts_then_a_rolled_back_outer_write_leave_no_context_behind(
    user, other_user, entries, require_context
):
    with audit_context("outer", performed_by=user):
        with audit_context("inner", performed_by=other_user):
            Invoice.objects.create(number="inner")
        with pytest.raises(RuntimeError), transaction.atomic():
            Invoice.objects.create(number="outer, rolled back")
            raise RuntimeError
    if require_context:
        with pytest.raises(DatabaseError, match="without an audit context"):
            Invoice.objects.create(number="after")
        assert logged(entries) == [("inner", "inner")]
    else:
        Invoice.objects.create(number="after")
        assert logged(entries) == [("inner", "inner"), ("after", "unknown")]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("require_context", [False, True], indirect=True)
def test_outer_write_then_inner_write_in_a_rolled_back_savepoint_leave_no_context_behind(
    user, other_user, entries, require_context
):
    with transaction.atomic():
        with audit_context("outer", performed_by=user):
            Invoice.objects.create(number="outer")
            with audit_context("inner", performed_by=other_user), pytest.raises(RuntimeError), transaction.atomic():
                Invoice.objects.create(number="inner, rolled back")
                raise RuntimeError
        # Same transaction, every context left: neither an ORM write nor one
        # that bypasses Django's cursor may see the outer (or inner) context.
        if require_context:
            with pytest.raises(DatabaseError, match="without an audit context"), transaction.atomic():
                Invoice.objects.create(number="after")
            with pytest.raises(connection.Database.Error, match="without an audit context"), transaction.atomic():
                raw_update("raw after")
        else:
            Invoice.objects.create(number="after")
            raw_update("raw after")
    if require_context:
        assert logged(entries) == [("outer", "outer")]
    else:  # the raw UPDATE changed both invoices
        assert logged(entries) == [
            ("outer", "outer"),
            ("after", "unknown"),
            ("UPDATE", "unknown"),
            ("UPDATE", "unknown"),
        ]


@pytest.mark.django_db(transaction=True)
def test_inner_context_left_inside_a_transaction_gives_the_outer_back(user, other_user, entries):
    with transaction.atomic(), audit_context("outer", performed_by=user):
        with audit_context("inner", performed_by=other_user):
            Invoice.objects.create(number="inner")
        Invoice.objects.create(number="outer")
    assert logged(entries) == [("inner", "inner"), ("outer", "outer")]


@pytest.mark.django_db(transaction=True)
def test_a_savepoint_rolled_back_after_a_context_was_left_does_not_bring_it_back(entries):
    # Found by the state machine: leaving B clears the setting inside the
    # savepoint; rolling the savepoint back restored A's value, and the write
    # after every context had ended was logged as A.
    with transaction.atomic():
        with audit_context("A"):
            Invoice.objects.create(number="1")
            with pytest.raises(RuntimeError, match="roll back"), transaction.atomic():
                with audit_context("B"):
                    Invoice.objects.create(number="in B, rolled back")
                raise RuntimeError("roll back")
        Invoice.objects.create(number="2")
        raw_update("raw")  # bypasses Django's cursor: sees only what PostgreSQL holds
    assert logged(entries) == [("1", "A"), ("2", "unknown"), ("UPDATE", "unknown"), ("UPDATE", "unknown")]


@pytest.mark.django_db(transaction=True)
def test_a_context_left_inside_a_savepoint_stays_hidden_when_the_savepoint_rolls_back(entries):
    with transaction.atomic():
        savepoint = None
        with audit_context("A"):
            Invoice.objects.create(number="1")
            savepoint = SAVEPOINT_CREATE()
        transaction.savepoint_rollback(savepoint)  # back to when A's value was in force
        Invoice.objects.create(number="2")
        raw_update("raw")
    assert logged(entries) == [("1", "A"), ("2", "unknown"), ("UPDATE", "unknown"), ("UPDATE", "unknown")]


@pytest.mark.django_db(transaction=True)
def test_a_raw_rollback_to_savepoint_does_not_bring_a_left_context_back(entries):
    with connection.cursor() as cursor:
        cursor.execute("BEGIN")
        with audit_context("A"):
            Invoice.objects.create(number="1")
            cursor.execute("SAVEPOINT s")
        cursor.execute("/* raw */ ROLLBACK TO SAVEPOINT s")
        Invoice.objects.create(number="2")
        raw_update("raw")
        cursor.execute("COMMIT")
    assert logged(entries) == [("1", "A"), ("2", "unknown"), ("UPDATE", "unknown"), ("UPDATE", "unknown")]


# --- 2. raw transaction control inside a context, in autocommit ----------------


@pytest.mark.django_db(transaction=True)
def test_raw_begin_rollback_savepoint_and_discard_inside_a_context(user, entries):
    with audit_context("raw", performed_by=user):
        with connection.cursor() as cursor:
            cursor.execute("BEGIN")
            Invoice.objects.create(number="rolled back")
            cursor.execute("ROLLBACK")
        Invoice.objects.create(number="after rollback")
        with connection.cursor() as cursor:
            cursor.execute("BEGIN")
            Invoice.objects.create(number="before savepoint")
            cursor.execute("SAVEPOINT s")
            Invoice.objects.create(number="in savepoint")
            cursor.execute("ROLLBACK TO SAVEPOINT s")
            Invoice.objects.create(number="after savepoint")
            cursor.execute("COMMIT")
            cursor.execute("/* comment */ DISCARD ALL")
        Invoice.objects.create(number="after discard")
        with connection.cursor() as cursor:
            cursor.execute("BEGIN")
        Invoice.objects.create(number="left open")
    # Leaving with the raw transaction still open raised nothing, and hid the context.
    Invoice.objects.create(number="after leaving")
    with connection.cursor() as cursor:
        cursor.execute("COMMIT")
    assert logged(entries) == [
        ("after rollback", "raw"),
        ("before savepoint", "raw"),
        ("after savepoint", "raw"),
        ("after discard", "raw"),
        ("left open", "raw"),
        ("after leaving", "unknown"),
    ]
    assert {entry.performed_by_id for entry in entries(context_type="raw")} == {user.pk}


# --- 3. streaming responses -----------------------------------------------------


@pytest.mark.django_db(transaction=True)
@URLS
def test_streaming_response_writes_carry_the_request_context_through_wsgi(user, entries):
    client = Client()
    client.force_login(user)
    status, body = wsgi_request(WSGIHandler(), "/stream/", f"sessionid={client.cookies['sessionid'].value}", "GET")
    assert (status, body) == ("200 OK", b"start\none\ntwo\n")
    assert logged(entries) == [
        ("STREAM-1", "http-request"),
        ("STREAM-2", "http-request"),
        ("UPDATE", "http-request"),  # the generator's finally
    ]
    assert {entry.performed_by_id for entry in entries()} == {user.pk}
    assert len({entry.context_id for entry in entries()}) == 1


@pytest.mark.django_db(transaction=True)  # closing the response closes the connection (CONN_MAX_AGE = 0)
@URLS
def test_streaming_response_closed_early_still_carries_the_context(user, entries):
    client = Client()
    client.force_login(user)
    response = client.get("/stream/")
    chunks = iter(response.streaming_content)
    assert next(chunks) == b"start\n"
    assert next(chunks) == b"one\n"
    response.close()  # the client went away: the generator's finally runs now
    assert logged(entries) == [("STREAM-1", "http-request"), ("UPDATE", "http-request")]
    assert entries()[1].changes == {"notes": ["", "closed"]}
    assert {entry.performed_by_id for entry in entries()} == {user.pk}
    InvoiceFactory()
    assert entries()[-1].context_type == "unknown"


@pytest.mark.django_db
@URLS
def test_async_streaming_response_writes_carry_the_request_context(user, entries):
    async def request():
        client = AsyncClient()
        await client.aforce_login(user)
        response = await client.get("/async-stream/")
        return b"".join([chunk async for chunk in response.streaming_content])

    assert async_to_sync(request)() == b"start\none\ntwo\n"
    assert logged(entries) == [("ASTREAM-1", "http-request"), ("ASTREAM-2", "http-request")]
    assert {entry.performed_by_id for entry in entries()} == {user.pk}


@pytest.mark.django_db
@URLS
@pytest.mark.filterwarnings("ignore:StreamingHttpResponse must consume synchronous iterators")
def test_sync_streaming_response_under_asgi_carries_the_request_context(user, entries):
    async def request():
        client = AsyncClient()
        await client.aforce_login(user)
        response = await client.get("/stream/")
        return b"".join([chunk async for chunk in response])

    assert async_to_sync(request)() == b"start\none\ntwo\n"
    assert [context for _, context in logged(entries)] == ["http-request"] * 3


# --- 4. NUL bytes -------------------------------------------------------------------


@pytest.mark.django_db
@URLS
def test_nul_bytes_in_path_and_query_are_replaced_and_the_write_is_logged(entries):
    response = Client().post("/anywhere/a%00b/?k%00ey=v%00al&plain=x")
    assert response.status_code == 200
    [entry] = entries()
    assert entry.context["path"] == "/anywhere/a\ufffdb/"
    assert entry.context["query_params"] == {"k\ufffdey": ["v\ufffdal"], "plain": ["x"]}


@pytest.mark.django_db
def test_nul_bytes_in_audit_context_values_are_replaced(entries):
    with audit_context("nul\x00type", context={"k\x00": ["a\x00b", {"c": "\x00"}]}, tenant="t\x00"):
        InvoiceFactory()
    [entry] = entries()
    assert entry.context_type == "nul\ufffdtype"
    assert entry.context == {"k\ufffd": ["a\ufffdb", {"c": "\ufffd"}]}
    assert entry.tenant == "t\ufffd"


@pytest.mark.django_db
def test_nul_bytes_and_lone_surrogates_in_command_options_are_replaced(entries):
    InvoiceFactory()
    call_command("bump_amounts", "1", out="a\x00b\udcff", stdout=io.StringIO())
    [entry] = entries(action="UPDATE")
    assert entry.context["kwargs"]["out"] == "a\ufffdb\ufffd"


# --- 5. more query parameters than Django parses ------------------------------------


@pytest.mark.django_db
@URLS
def test_request_with_too_many_query_parameters_is_logged_with_a_capped_record(settings, entries):
    count = settings.DATA_UPLOAD_MAX_NUMBER_FIELDS + 500
    query = "&".join(f"p{i}=v{i}" for i in range(count))
    response = Client().post(f"/anywhere/?{query}")
    assert response.status_code == 200  # the view never read request.GET; neither may the audit log
    [entry] = entries()
    params = entry.context["query_params"]
    assert len(params) == MAX_QUERY_PARAMETERS
    assert params["p0"] == ["v0"]
    assert entry.context["truncated"] == ["query_params"]


@pytest.mark.django_db
@URLS
def test_request_with_huge_path_and_values_is_logged_with_a_capped_record(entries):
    response = Client().post("/anywhere/" + "p" * 5_000 + "/?big=" + "x" * 200_000)
    assert response.status_code == 200
    [entry] = entries()
    assert entry.context["query_params"]["big"] == ["x" * MAX_QUERY_VALUE_LENGTH]
    assert set(entry.context["truncated"]) == {"path", "query_params"}
    assert len(entry.context["path"]) == 2_000


# --- 6. values that do not fit ----------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"context_type": "x" * 65}, "context_type is 65 characters long; its column holds at most 64"),
        ({"context_type": "ok", "tenant": "t" * 51}, "tenant is 51 characters long; its column holds at most 50"),
        ({"context_type": ""}, "non-empty string"),
        ({"context_type": "ok", "context": {"blob": "x" * MAX_PAYLOAD_BYTES}}, "travels with every write"),
    ],
)
def test_values_that_do_not_fit_are_refused_when_the_context_is_entered(entries, arguments, message):
    with pytest.raises(ValueError, match=message), audit_context(**arguments):
        pytest.fail("the block must not run")
    InvoiceFactory()
    assert [entry.context_type for entry in entries()] == ["unknown"]


@pytest.mark.django_db
def test_self_referencing_context_is_refused_when_entered():
    cyclic = {"a": []}
    cyclic["a"].append(cyclic)
    with pytest.raises(ValueError, match=r"value\['a'\]\[0\] refers to itself"), audit_context("x", context=cyclic):
        pytest.fail("the block must not run")


@pytest.mark.django_db
@URLS
def test_request_context_values_over_max_length_are_cut_not_fatal(monkeypatch, entries):
    built = AuditLogContext.create_from_request.__func__

    def with_long_tenant(cls, request):
        context = built(cls, request)
        context.tenant = request.headers.get("X-Tenant", "")  # client-controlled, may be any length
        return context

    monkeypatch.setattr(AuditLogContext, "create_from_request", classmethod(with_long_tenant))
    response = Client().post("/anywhere/", headers={"X-Tenant": "t" * 500})
    assert response.status_code == 200
    assert entries()[0].tenant == "t" * 50
