"""The log entry's page: its context as labelled rows, and objects called by their names."""

import io
import re
import uuid

import pytest
from django.core.management import call_command
from django.db import transaction

from audit_log.context import audit_context
from audit_log_admin.context_display import ContextRow, context_rows, display_address
from tests.admin.factories import LogEntryFactory, insert_raw_entry, nested_json_sql
from tests.factories import CustomerFactory, InvoiceFactory
from tests.testapp.models import AuditLogEntry, Customer, Invoice, Secret


def detail(response):
    assert response.status_code == 200
    return response.context["audit_log"]


def rows(entry):
    """The context rows as ``{label: text, or items}``."""
    return {row.label: row.items or row.text for row in context_rows(entry)}


def raw_context(content):
    match = re.search(
        r'<details class="audit-log-raw-context"( open)?><summary>Raw context</summary>(.*?)</details>', content, re.S
    )
    assert match is not None
    return match.group(1) == " open", match.group(2)


def breadcrumb(content):
    """The last crumb: Django 5 writes a ``div`` of "&rsaquo;"-separated links, Django 6 an ``ol``."""
    match = re.search(r'class="breadcrumbs">(.*?)</(?:div|ol)>', content, re.S)
    assert match is not None
    return re.split(r"&rsaquo;|<li[^>]*>", match.group(1))[-1].replace("</li>", "").strip()


# --- the context as labelled rows ------------------------------------------------------------------


def test_context_rows_of_a_request(db):
    entry = LogEntryFactory(
        context_type="http-request",
        context={
            "method": "POST",
            "path": "/admin/shop/product/7/change/",
            "query_params": {"q": ["v60", "dripper"], "page": ["2"]},
            "remote_addr": "203.0.113.9",
            "user_agent": "Mozilla/5.0",
            "tenant": "north",
        },
    )
    assert rows(entry) == {
        "Method": "POST",
        "Path": "/admin/shop/product/7/change/",
        "Query parameters": (("page", "2"), ("q", "v60"), ("q", "dripper")),
        "Remote address": "203.0.113.9",
        "User agent": "Mozilla/5.0",
        "tenant": "north",
    }


def test_context_rows_of_a_request_say_what_was_cut_and_leave_out_no_query(db):
    entry = LogEntryFactory(
        context_type="http-request",
        context={"method": "GET", "path": "/x", "query_params": {}, "truncated": ["path", "query_params"]},
    )
    assert rows(entry) == {"Method": "GET", "Path": "/x", "Cut short": "Path, Query parameters"}


def test_context_rows_of_a_management_command_show_only_the_options_given(db):
    entry = LogEntryFactory(
        context_type="management-command",
        context={
            "command": "seed_demo",
            "args": ["shop", 3],
            "kwargs": {"verbosity": 1, "dry_run": False, "since": None, "count": 3, "reset": True, "skip_checks": True},
        },
    )
    assert rows(entry) == {"Command": "seed_demo", "Arguments": "shop 3", "Options": (("count", "3"), ("reset", ""))}


def test_context_rows_of_a_command_run(superuser_client, entry_url):
    InvoiceFactory(amount="1.00")
    call_command("bump_amounts", "2.50", "--since=2026-01-01", stdout=io.StringIO())
    entry = AuditLogEntry.objects.get(action="UPDATE")
    content = superuser_client.get(entry_url(entry)).content.decode()
    assert rows(entry) == {"Command": "bump_amounts", "Options": (("amount", "2.50"), ("since", "2026-01-01"))}
    assert '<label>Command:</label><div class="readonly">' in content


def test_context_rows_of_a_change_without_context_show_the_database_session(superuser_client, db, entry_url):
    InvoiceFactory()  # no audit context: the trigger records the session
    entry = AuditLogEntry.objects.get()
    assert entry.context_type == "unknown"
    shown = rows(entry)
    assert list(shown)[:4] == ["Database user", "Current role", "Application", "Client address"]
    assert shown["Database user"] == entry.context["db_user"]
    assert entry.context["client_addr"] == "127.0.0.1/32"  # PostgreSQL's inet text ...
    assert shown["Client address"] == "127.0.0.1"  # ... shown as the address
    content = superuser_client.get(entry_url(entry)).content.decode()
    assert '<label>Client address:</label><div class="readonly">' in content
    assert "127.0.0.1/32" not in content.split("Raw context")[0]


@pytest.mark.parametrize(
    ("stored", "shown"),
    [
        ("127.0.0.1/32", "127.0.0.1"),
        ("::1/128", "::1"),
        ("2001:db8::5/128", "2001:db8::5"),
        ("10.0.0.0/8", "10.0.0.0/8"),
        ("192.168.1.7/24", "192.168.1.7/24"),
        ("127.0.0.1", "127.0.0.1"),
        ("not/an address", "not/an address"),
        (["a"], '["a"]'),
    ],
)
def test_display_address_drops_a_host_mask_only(stored, shown):
    assert display_address(stored) == shown


def test_context_rows_of_a_custom_context_show_each_key(db):
    entry = LogEntryFactory(
        context_type="celery-task",
        context={"task": "sync", "retries": 2, "ok": True, "nested": {"a": [1, {"b": None}]}, "none": None},
    )
    entry.refresh_from_db()  # as stored: jsonb orders keys by length, the rows by name
    assert context_rows(entry) == (
        ContextRow(label="nested", text='{"a": [1, {"b": null}]}', kind="json"),
        ContextRow(label="none", kind="empty"),
        ContextRow(label="ok", text="True"),
        ContextRow(label="retries", text="2"),
        ContextRow(label="task", text="sync"),
    )


@pytest.mark.parametrize(
    ("context_type", "context", "expected"),
    [
        ("test", ["a", "list"], {"Value": '["a", "list"]'}),
        ("test", "text", {"Value": "text"}),
        ("test", 7, {"Value": "7"}),
        ("test", {}, {}),
        ("http-request", {"method": ["GET"], "query_params": ["q"], "remote_addr": 5}, None),
        ("management-command", {"command": None, "args": "x", "kwargs": ["y"]}, None),
        ("unknown", {"client_addr": {"x": 1}, "db_user": ""}, None),
    ],
)
def test_context_rows_of_odd_json(superuser_client, db, entry_url, context_type, context, expected):
    entry = LogEntryFactory(context_type=context_type, context=context, context_id=uuid.uuid4())
    if expected is not None:
        assert rows(entry) == expected
    assert len(context_rows(entry)) == (len(context) if isinstance(context, dict) else 1)
    assert superuser_client.get(entry_url(entry)).status_code == 200


def test_context_rows_of_many_keys_stop_at_a_limit(db):
    entry = LogEntryFactory(context={f"k{n}": n for n in range(150)})
    shown = context_rows(entry)
    assert len(shown) == 101
    assert shown[-1].text == "50 more keys (see the raw context)"


def test_entry_page_of_a_context_python_cannot_decode_shows_it_raw(superuser_client, db, entry_url):
    entry_id = insert_raw_entry(context_sql=f"""('{{"path": ' || {nested_json_sql(3_000)} || '}}')::jsonb""")
    entry = AuditLogEntry.objects.get(pk=entry_id)
    assert context_rows(entry) == ()
    response = superuser_client.get(entry_url(entry))
    opened, raw = raw_context(detail(response) and response.content.decode())
    assert opened  # nothing else shows it
    assert "[[[[" in raw


def test_entry_page_keeps_the_raw_context_behind_a_disclosure(superuser_client, invoice, entry_url):
    entry = AuditLogEntry.objects.get(action="INSERT", table_name="testapp_invoice")
    content = superuser_client.get(entry_url(entry)).content.decode()
    assert '<label>task:</label><div class="readonly">' in content
    opened, raw = raw_context(content)
    assert not opened
    assert "&quot;task&quot;: &quot;fixture&quot;" in raw


def test_entry_page_shows_a_request_as_labelled_rows(superuser_client, invoice, entry_url):
    superuser_client.post(
        f"/admin/testapp/invoice/{invoice.pk}/change/?_changelist_filters=q%3Dx",
        {"number": "INV-1", "status": "draft", "amount": "12.00", "notes": "second"},
    )
    entry = AuditLogEntry.objects.filter(context_type="http-request").get()
    content = superuser_client.get(entry_url(entry)).content.decode()
    for label, value in [
        ("Method", "POST"),
        ("Path", f"/admin/testapp/invoice/{invoice.pk}/change/"),
        ("Remote address", "127.0.0.1"),
    ]:
        assert re.search(
            rf"<label>{label}:</label><div class=\"readonly\">\s*<span[^>]*>{re.escape(value)}</span>", content
        )
    assert '<th scope="row">_changelist_filters</th><td><span class="audit-log-value">q=x</span></td>' in content


def test_entry_page_escapes_context_rows(superuser_client, db, entry_url):
    entry = LogEntryFactory(context={"<b>key</b>": "<script>alert(1)</script>"})
    content = superuser_client.get(entry_url(entry)).content.decode()
    assert "<script>alert(" not in content
    assert "<b>key" not in content
    assert "&lt;b&gt;key&lt;/b&gt;:" in content


# --- names, not ids -----------------------------------------------------------------------------------


def test_entry_page_breadcrumb_and_heading_name_the_object(superuser_client, invoice, entry_url):
    entry = AuditLogEntry.objects.get(action="INSERT", table_name="testapp_invoice")
    response = superuser_client.get(entry_url(entry))
    content = response.content.decode()
    assert "<h2>Created: Invoice INV-1</h2>" in content
    assert breadcrumb(content) == "Created: Invoice INV-1"
    assert "testapp_invoice #" not in content
    assert "<title>Created: Invoice INV-1 |" in content


def test_entry_page_does_not_double_the_model_of_a_default_str(superuser_client, user, entry_url):
    with audit_context("test", performed_by=user):
        secret = Secret.objects.create(codeword="swordfish")
    assert str(secret) == f"Secret object ({secret.pk})"  # Django's default __str__
    entry = AuditLogEntry.objects.get(table_name="testapp_secret")
    response = superuser_client.get(entry_url(entry))
    content = response.content.decode()
    assert f"<h2>Created: Secret {secret.pk}</h2>" in content
    assert breadcrumb(content) == f"Created: Secret {secret.pk}"
    assert detail(response).display.object.text == f"Secret {secret.pk}"
    assert "object (" not in content


def test_entry_page_names_a_deleted_object_by_its_logged_row(superuser_client, user, entry_url):
    with audit_context("test", performed_by=user):
        gone = InvoiceFactory(number="GONE-7")
        gone.status = "sent"
        gone.save()
        gone.delete()
    for action in ("DELETE", "UPDATE"):  # an UPDATE's page finds the row its DELETE logged
        response = superuser_client.get(entry_url(AuditLogEntry.objects.get(action=action)))
        assert detail(response).display.object.text == "GONE-7 (deleted)"
        assert (
            breadcrumb(response.content.decode())
            == f"{'Deleted' if action == 'DELETE' else 'Changed'}: Invoice GONE-7 (deleted)"
        )


def test_entry_page_names_a_deleted_object_by_id_when_its_str_needs_a_query(
    superuser_client, user, entry_url, monkeypatch
):
    with audit_context("test", performed_by=user):
        gone = InvoiceFactory(number="GONE-8", customer=CustomerFactory(name="ACME"))
        gone_pk = gone.pk
        gone.delete()
    monkeypatch.setattr(Invoice, "__str__", lambda self: f"{self.number} for {self.customer}")  # reads the customer
    entry = AuditLogEntry.objects.get(action="DELETE", table_name="testapp_invoice")
    assert detail(superuser_client.get(entry_url(entry))).heading == f"Deleted: Invoice {gone_pk} (deleted)"


def test_entry_page_names_a_deleted_object_by_id_when_its_str_reads_a_masked_column(
    superuser_client, user, entry_url, monkeypatch
):
    with audit_context("test", performed_by=user):
        gone = CustomerFactory(name="ACME", password="hunter2")
        gone_pk = gone.pk
        gone.delete()
    monkeypatch.setattr(Customer, "__str__", lambda self: f"{self.name} ({self.password})")
    entry = AuditLogEntry.objects.get(action="DELETE")
    assert detail(superuser_client.get(entry_url(entry))).heading == f"Deleted: Customer {gone_pk} (deleted)"


def test_entry_page_lists_the_names_of_the_objects_of_its_transaction(superuser_client, user, entry_url):
    with audit_context("test", performed_by=user):
        customer = CustomerFactory(name="ACME")
        kept = InvoiceFactory(number="INV-KEEP", customer=customer)
        gone = InvoiceFactory(number="INV-GONE", customer=customer)
        secret = Secret.objects.create(codeword="x")
        gone.delete()
    entry = AuditLogEntry.objects.get(table_name="testapp_customer")
    listed = [(action, label) for url, action, label in detail(superuser_client.get(entry_url(entry))).same_transaction]
    assert listed == [
        ("Created", "Invoice INV-KEEP"),
        ("Created", "Invoice INV-GONE (deleted)"),
        ("Created", f"Secret {secret.pk}"),
        ("Deleted", "Invoice INV-GONE (deleted)"),
    ]
    content = superuser_client.get(entry_url(entry)).content.decode()
    later = AuditLogEntry.objects.get(table_name="testapp_invoice", object_id=str(kept.pk))
    assert f'<a href="{entry_url(later)}">Created: Invoice INV-KEEP</a>' in content


@pytest.mark.django_db(transaction=True)  # each transaction of its own
def test_entry_page_names_the_objects_of_its_transaction_in_a_fixed_number_of_queries(
    superuser_client, user, entry_url, django_assert_num_queries
):
    def page_of_transaction(invoices):
        with transaction.atomic(), audit_context("test", performed_by=user):
            customer = CustomerFactory(name="ACME")
            for number in range(invoices):
                InvoiceFactory(number=f"INV-{number}", customer=customer)
            Secret.objects.create(codeword="x").delete()
        entry = AuditLogEntry.objects.filter(table_name="testapp_customer").latest("id")
        superuser_client.get(entry_url(entry))  # session and content types cached
        return entry

    small, large = page_of_transaction(2), page_of_transaction(12)
    # session, user, the entry, the customer, the other entries, their invoices (one query), their secrets (one)
    with django_assert_num_queries(7):
        assert len(detail(superuser_client.get(entry_url(small))).same_transaction) == 4
    with django_assert_num_queries(7):
        assert len(detail(superuser_client.get(entry_url(large))).same_transaction) == 14
