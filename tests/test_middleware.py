"""``RequestContextMiddleware``: requests are the context of their changes."""

import pytest
from asgiref.sync import async_to_sync
from django.core.handlers.wsgi import WSGIHandler
from django.db import connection
from django.test import AsyncClient, Client
from django.test.utils import CaptureQueriesContext, modify_settings

from audit_log.middleware import AuditLoggingMiddleware, RequestContextMiddleware
from tests.factories import InvoiceFactory
from tests.wsgi import wsgi_request

pytestmark = pytest.mark.django_db

WITHOUT_MIDDLEWARE = {"remove": "audit_log.middleware.RequestContextMiddleware"}


def logged_in(user):
    client = Client()  # a client builds its middleware chain once: make one per settings change
    client.force_login(user)
    return client


def count_queries(client, method, path):
    getattr(client, method)(path)  # warm up: session and content-type caches
    with CaptureQueriesContext(connection) as queries:
        response = getattr(client, method)(path)
    assert response.status_code == 200
    return len(queries)


def test_request_is_recorded_as_the_context(user, entries):
    response = logged_in(user).post("/create/?source=form&tag=a&tag=b", {"number": "W-1"})
    assert response.status_code == 200
    [entry] = entries()
    assert entry.context_type == "http-request"
    assert entry.performed_by == user
    assert entry.performed_by_label == "alice"
    assert entry.context == {
        "method": "POST",
        "path": "/create/",
        "query_params": {"source": ["form"], "tag": ["a", "b"]},
        "remote_addr": "127.0.0.1",
    }


def test_anonymous_requests_have_no_user(entries):
    Client().post("/create/")
    [entry] = entries()
    assert (entry.context_type, entry.performed_by_id, entry.performed_by_label) == ("http-request", None, "")


def test_all_writes_of_a_request_share_its_context_id(user, entries):
    logged_in(user).post("/create-many/")
    logged = entries()
    assert [entry.action for entry in logged] == ["INSERT", "UPDATE", "UPDATE"]
    assert len({entry.context_id for entry in logged}) == 1
    assert logged[0].context_id is not None


def test_request_that_writes_nothing_adds_no_statement(user):
    with modify_settings(MIDDLEWARE=WITHOUT_MIDDLEWARE):
        without = count_queries(logged_in(user), "get", "/read/")
    with_middleware = count_queries(logged_in(user), "get", "/read/")
    assert with_middleware == without


@pytest.mark.django_db(transaction=True)  # autocommit, as in production
def test_request_that_writes_adds_no_statement(user):
    with modify_settings(MIDDLEWARE=WITHOUT_MIDDLEWARE):
        without = count_queries(logged_in(user), "post", "/create-many/")
    with_middleware = count_queries(logged_in(user), "post", "/create-many/")
    assert with_middleware == without  # the context rides with each write


def test_request_inside_an_open_transaction_hides_its_context_when_it_ends(user, visible_context):
    # Here the test's transaction stays open after the request: leaving the
    # context costs one statement, so nothing after the request can see it.
    with modify_settings(MIDDLEWARE=WITHOUT_MIDDLEWARE):
        without = count_queries(logged_in(user), "post", "/create-many/")
    with_middleware = count_queries(logged_in(user), "post", "/create-many/")
    assert with_middleware == without + 1
    assert visible_context() == ""


def test_context_is_cleared_after_the_request(user, entries, visible_context):
    logged_in(user).post("/create/")
    assert visible_context() == ""
    InvoiceFactory()
    assert [entry.context_type for entry in entries()] == ["http-request", "unknown"]


def test_context_is_cleared_when_the_view_raises(user, entries, visible_context):
    with pytest.raises(RuntimeError, match="view failed"):
        logged_in(user).get("/fail/")
    assert visible_context() == ""
    InvoiceFactory()
    assert [(entry.context_type, entry.performed_by_id) for entry in entries()] == [
        ("http-request", user.pk),
        ("unknown", None),
    ]


def test_reused_connection_never_carries_one_requests_user_into_the_next(user, other_user, entries):
    first, second = logged_in(user), logged_in(other_user)
    first.post("/create/", {"number": "first"})
    Client().post("/create/", {"number": "anonymous"})
    second.post("/create/", {"number": "second"})
    assert [(entry.changes["number"], entry.performed_by_id) for entry in entries()] == [
        ("first", user.pk),
        ("anonymous", None),
        ("second", other_user.pk),
    ]


def test_async_view_under_asgi(user, entries, visible_context):
    async def request():
        client = AsyncClient()
        await client.aforce_login(user)
        return await client.get("/async-create/?number=async")

    response = async_to_sync(request)()
    assert response.status_code == 200
    [entry] = entries()
    assert (entry.context_type, entry.performed_by_id, entry.context["path"]) == (
        "http-request",
        user.pk,
        "/async-create/",
    )
    assert visible_context() == ""


def test_sync_view_under_asgi(user, entries):
    async def request():
        client = AsyncClient()
        await client.aforce_login(user)
        return await client.post("/create/", {"number": "asgi"})

    assert async_to_sync(request)().status_code == 200
    [entry] = entries()
    assert (entry.context_type, entry.performed_by_id) == ("http-request", user.pk)


def test_async_view_that_raises_clears_the_context(user, entries, visible_context):
    async def request():
        client = AsyncClient(raise_request_exception=True)
        await client.aforce_login(user)
        return await client.get("/fail/")

    with pytest.raises(RuntimeError, match="view failed"):
        async_to_sync(request)()
    assert visible_context() == ""


def test_middleware_keeps_its_original_name():
    assert AuditLoggingMiddleware is RequestContextMiddleware


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("max_age", [0, 600])
def test_statements_per_request_with_real_connection_handling(user, entries, max_age):
    # The test client keeps connections open between requests; Django's WSGI
    # handler closes them after each request when CONN_MAX_AGE is 0.
    connection.settings_dict["CONN_MAX_AGE"] = max_age
    try:
        client = Client()
        client.force_login(user)
        cookie = f"sessionid={client.cookies['sessionid'].value}"
        counts = {}
        for label, change in (("without", modify_settings(MIDDLEWARE=WITHOUT_MIDDLEWARE)), ("with", modify_settings())):
            with change:
                handler = WSGIHandler()
                for path, method in (("/read/", "GET"), ("/create-many/", "POST")):
                    wsgi_request(handler, path, cookie, method)  # warm up caches
                    with CaptureQueriesContext(connection) as queries:
                        status, _ = wsgi_request(handler, path, cookie, method)
                    assert status.startswith("200"), status
                    counts[label, path] = len(queries)
        assert counts["with", "/read/"] == counts["without", "/read/"]
        assert counts["with", "/create-many/"] == counts["without", "/create-many/"]
        assert connection.connection is None if max_age == 0 else connection.connection is not None
    finally:
        connection.settings_dict["CONN_MAX_AGE"] = 0
    assert {entry.context_type for entry in entries()} == {"unknown", "http-request"}
    assert {entry.performed_by_id for entry in entries(context_type="http-request")} == {user.pk}
