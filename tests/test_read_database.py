"""AUDIT_LOG_READ_DATABASE: which alias each log read queries (no replica needed).

The "other" alias (a second database on the same server) plays a stale
replica: :func:`replicate` copies the log into it as it is at that moment,
so what a page shows tells which database it read, and a forged copy tells
whether revert and restore read the primary.
"""

import pytest
from django.contrib.contenttypes.models import ContentType
from django.db import connections
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from audit_log import history, routing
from audit_log.checks import _check_read_database, check_settings
from audit_log.conf import conf
from audit_log.context import audit_context
from tests.factories import InvoiceFactory, UserFactory
from tests.testapp.models import AuditLogEntry, Invoice

pytestmark = pytest.mark.django_db(databases=["default", "other"])

LOG_TABLE = AuditLogEntry._meta.db_table


def replicate(**forged):
    """Copy every log entry of "default" to "other", overriding ``changes`` of the entries named in ``forged``."""
    other_types = {(ct.app_label, ct.model): ct.pk for ct in ContentType.objects.using("other").all()}
    copies = []
    for entry in AuditLogEntry.objects.using("default").select_related("content_type").order_by("id"):
        ct = entry.content_type
        entry.content_type_id = other_types[(ct.app_label, ct.model)]
        entry.changes = forged.get(str(entry.pk), entry.changes)
        copies.append(entry)
    AuditLogEntry.objects.using("other").bulk_create(copies)


def log_queries(alias):
    """Capture the queries sent to ``alias``; ``.log`` lists those naming the log table."""
    capture = CaptureQueriesContext(connections[alias])
    capture.log = lambda: [q["sql"] for q in capture.captured_queries if LOG_TABLE in q["sql"]]
    return capture


@pytest.fixture
def invoice(user):
    with audit_context("test", performed_by=user):
        invoice = InvoiceFactory(number="R-1", notes="first")
        invoice.notes = "second"
        invoice.save()
    return invoice


@pytest.fixture
def read_other(settings):
    settings.AUDIT_LOG_READ_DATABASE = "other"


# --- the setting and its check ------------------------------------------------------------------


def test_conf_read_database_is_read_on_access(settings):
    assert conf.read_database is None
    settings.AUDIT_LOG_READ_DATABASE = "other"
    assert conf.read_database == "other"
    settings.AUDIT_LOG_READ_DATABASE = ""
    assert conf.read_database is None


def test_check_read_database_names_a_configured_alias(settings):
    databases = {"default": {}, "replica": {}}
    assert _check_read_database(None, databases) == []
    assert _check_read_database("replica", databases) == []
    [error] = _check_read_database("replcia", databases)
    assert error.id == "audit_log.E014"
    assert "'replcia'" in error.msg
    assert "'replica'" in error.msg
    assert error.hint
    assert [e.id for e in _check_read_database(["replica"], databases)] == ["audit_log.E014"]
    settings.AUDIT_LOG_READ_DATABASE = "nowhere"
    assert "audit_log.E014" in [e.id for e in check_settings()]
    settings.AUDIT_LOG_READ_DATABASE = "other"
    assert "audit_log.E014" not in [e.id for e in check_settings()]


# --- obj.audit_logs, the querysets ---------------------------------------------------------------


def test_audit_logs_reads_the_read_database(invoice, read_other):
    replicate()
    invoice.notes = "third"
    invoice.save()  # newer than the copy: a lagging replica lacks it
    with log_queries("default") as primary, log_queries("other") as replica:
        notes = [entry.changes.get("notes") for entry in invoice.audit_logs.all()]
    assert notes == [["first", "second"], "first"]  # newest first, without "third"
    assert len(replica.log()) == 1
    assert primary.log() == []
    assert invoice.audit_logs.db_manager("default").count() == 3  # an explicit database still wins


def test_audit_logs_without_the_setting_reads_the_object_database(invoice):
    replicate()
    with log_queries("default") as primary, log_queries("other") as replica:
        assert invoice.audit_logs.count() == 2
    assert len(primary.log()) == 1
    assert replica.log() == []


def test_audit_logs_prefetch_reads_the_read_database(invoice, read_other):
    replicate(**{str(AuditLogEntry.objects.order_by("id").first().pk): {"notes": "forged"}})
    with log_queries("default") as primary, log_queries("other") as replica:
        [fetched] = Invoice.objects.filter(pk=invoice.pk).prefetch_related("audit_logs")
    assert len(replica.log()) == 1
    assert primary.log() == []
    assert {"notes": "forged"} in [entry.changes for entry in fetched.audit_logs.all()]


def test_from_read_database(read_other, settings):
    assert AuditLogEntry.objects.from_read_database().db == "other"
    assert AuditLogEntry.objects.using("default").from_read_database().db == "default"
    settings.AUDIT_LOG_READ_DATABASE = None
    assert AuditLogEntry.objects.from_read_database().db == "default"


def test_log_read_database_keeps_objects_of_other_primaries(read_other):
    elsewhere = Invoice(number="E")
    elsewhere._state.db = "elsewhere"  # an object of a database the read database does not copy
    assert routing.log_read_database(elsewhere) == "elsewhere"
    elsewhere._state.db = "default"
    assert routing.log_read_database(elsewhere) == "other"
    assert routing.log_read_database() == "other"


def test_audited_stays_on_the_model_database(invoice, read_other):
    # Its objects may be saved, which a replica refuses: .using() sends it elsewhere.
    assert Invoice.objects.audited(action="UPDATE").db == "default"
    assert list(Invoice.objects.audited(action="UPDATE")) == [invoice]


# --- revert and restore read the primary ---------------------------------------------------------


def test_revert_of_an_entry_from_the_read_database_reads_the_primary(invoice, read_other):
    insert, update = AuditLogEntry.objects.order_by("id")
    replicate(**{str(insert.pk): {**insert.changes, "notes": "forged"}})
    stale = invoice.audit_logs.get(pk=update.pk)
    assert stale._state.db == "other"
    assert routing.primary_database(Invoice, stale) == "default"
    with log_queries("other") as replica:
        plan = history.plan_revert(stale)
        result = stale.revert()
    assert replica.log() == []
    assert plan.current_values["notes"] == "second"
    assert result.using == "default"
    invoice.refresh_from_db()
    assert invoice.notes == "first"  # the primary's log, not the forged copy


def test_revert_as_of_and_restore_read_the_primary(invoice, read_other, user):
    moment = AuditLogEntry.objects.order_by("id").first().at
    with audit_context("test", performed_by=user):
        Invoice.objects.filter(pk=invoice.pk).delete()
    delete = AuditLogEntry.objects.get(action="DELETE")
    replicate(**{str(delete.pk): {**delete.changes, "notes": "forged"}})
    stale = AuditLogEntry.objects.from_read_database().get(pk=delete.pk)
    with log_queries("other") as replica:
        restored = stale.restore()
    assert replica.log() == []
    assert Invoice.objects.get(pk=invoice.pk).notes == "second"
    history.revert(moment, model=Invoice, pk=invoice.pk)
    assert Invoice.objects.get(pk=invoice.pk).notes == "first"
    assert restored.using == "default"


class ReadsElsewhereRouter:
    """A primary/replica router: every read goes to "other", every write to "default"."""

    def db_for_read(self, model, **hints):
        return "other"

    def db_for_write(self, model, **hints):
        return "default"


def test_revert_under_a_replica_router_reads_and_writes_the_primary(invoice, settings):
    settings.DATABASE_ROUTERS = [ReadsElsewhereRouter()]
    insert, update = AuditLogEntry.objects.using("default").order_by("id")
    replicate(**{str(insert.pk): {**insert.changes, "notes": "forged"}})
    stale = AuditLogEntry.objects.get(pk=update.pk)  # the router reads "other"
    assert stale._state.db == "other"
    stale.revert()
    assert Invoice.objects.using("default").get(pk=invoice.pk).notes == "first"


# --- the admin -----------------------------------------------------------------------------------


@pytest.fixture
def admin_client(client, db):
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    return client


def test_history_tab_reads_the_read_database(admin_client, invoice, read_other):
    replicate()
    invoice.notes = "third"
    invoice.save()
    url = reverse("admin:testapp_invoice_history", args=[invoice.pk])
    with log_queries("default") as primary, log_queries("other") as replica:
        page = admin_client.get(url).content.decode()
    assert replica.log()
    assert primary.log() == []
    assert "second" in page
    assert "third" not in page


def test_changelist_and_entry_page_read_the_read_database(admin_client, invoice, read_other):
    replicate()
    entry = AuditLogEntry.objects.order_by("id").first()
    with log_queries("default") as primary, log_queries("other") as replica:
        assert admin_client.get(reverse("admin:testapp_auditlogentry_changelist")).status_code == 200
        assert admin_client.get(reverse("admin:testapp_auditlogentry_change", args=[entry.pk])).status_code == 200
    assert replica.log()
    assert primary.log() == []


def test_entry_page_falls_back_to_the_primary(admin_client, invoice, read_other):
    replicate()
    invoice.notes = "third"
    invoice.save()
    newest = AuditLogEntry.objects.order_by("id").last()  # what a revert redirects to, before replay
    response = admin_client.get(reverse("admin:testapp_auditlogentry_change", args=[newest.pk]))
    assert response.status_code == 200
    assert "third" in response.content.decode()
    missing = admin_client.get(reverse("admin:testapp_auditlogentry_change", args=[newest.pk + 1000]))
    assert missing.status_code == 302  # Django's "does not exist" redirect, as before


def test_revert_page_reads_the_primary(admin_client, invoice, read_other):
    # Nothing copied: the read database has no entry at all, the revert pages still find it.
    entry = AuditLogEntry.objects.order_by("id").last()
    url = reverse("admin:testapp_invoice_audit_revert", args=[invoice.pk, entry.pk])
    assert admin_client.get(url).status_code == 200
    response = admin_client.post(url, {"post": "yes"})
    assert response.status_code == 302
    invoice.refresh_from_db()
    assert invoice.notes == "first"
    assert admin_client.get(response["Location"]).status_code == 200  # the new entry's page, from the primary


def test_recover_reads_the_read_database_and_restores_from_the_primary(admin_client, invoice, read_other, user):
    with audit_context("test", performed_by=user):
        Invoice.objects.filter(pk=invoice.pk).delete()
    delete = AuditLogEntry.objects.get(action="DELETE")
    recover = reverse("admin:testapp_invoice_audit_recover")
    assert f"/{delete.pk}/" not in admin_client.get(recover).content.decode()  # not replicated yet
    preview = reverse("admin:testapp_invoice_audit_recover_preview", args=[delete.pk])
    assert admin_client.get(preview).status_code == 404  # read from the (stale) read database
    assert admin_client.post(preview, {"post": "yes"}).status_code == 302  # Restore reads the primary
    assert Invoice.objects.get(pk=invoice.pk).notes == "second"


def test_as_of_page_reads_the_read_database(admin_client, invoice, read_other):
    insert = AuditLogEntry.objects.order_by("id").first()
    replicate(**{str(insert.pk): {**insert.changes, "notes": "forged"}})
    url = reverse("admin:testapp_invoice_audit_as_of", args=[invoice.pk, insert.pk])
    with log_queries("default") as primary, log_queries("other") as replica:
        page = admin_client.get(url).content.decode()
    assert replica.log()
    assert primary.log() == []
    assert "forged" in page  # the state the read database holds
