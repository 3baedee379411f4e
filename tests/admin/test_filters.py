import django_filters
import pytest
from django.contrib import admin
from django.core.exceptions import ImproperlyConfigured
from django.test import RequestFactory

from audit_log_admin.admin import LogEntryAdmin, LogEntryChangeList
from audit_log_admin.filters import (
    FilterSetListFilter,
    LogEntryFilterSet,
    audited_content_type_choices,
    known_context_types,
    parameter_names,
)
from tests.admin.factories import LogEntryFactory
from tests.testapp.models import AuditLogEntry, NotAudited


def bridge(query, filterset_class=LogEntryFilterSet, model_admin=None):
    request = RequestFactory().get("/", query)
    params = dict(request.GET.lists())
    model_admin = model_admin or admin.site.get_model_admin(AuditLogEntry)

    class Bridge(FilterSetListFilter):
        pass

    Bridge.filterset_class = filterset_class
    return Bridge(request, params, AuditLogEntry, model_admin), params


def test_parameter_names_include_both_ends_of_a_range():
    assert parameter_names(LogEntryFilterSet) == [
        "model",
        "action",
        "user",
        "at_after",
        "at_before",
        "object_id",
        "context_type",
        "path",
        "changed",
        "transaction",
        "context_id",
    ]


def test_bridge_claims_its_parameters_and_leaves_the_rest(db, monkeypatch):
    monkeypatch.setattr("django.contrib.messages.api.add_message", lambda *args, **kwargs: None)
    spec, params = bridge({"action": "UPDATE", "at_after": "", "q": "x", "at__year": "2026"})
    assert params == {"q": ["x"], "at__year": ["2026"]}
    assert spec.used_parameters == {"action": ["UPDATE"], "at_after": [""]}
    assert spec.expected_parameters() == parameter_names(LogEntryFilterSet)
    assert spec.has_output()


def test_bridge_without_parameters_does_not_filter(db):
    entry = LogEntryFactory()
    spec, _ = bridge({})
    assert not spec.filterset.is_bound
    assert list(spec.queryset(None, AuditLogEntry.objects.all())) == [entry]


def test_bridge_with_invalid_values_matches_nothing_and_reports_them(db, monkeypatch):
    reported = []
    monkeypatch.setattr(
        "audit_log_admin.filters.messages.error", lambda request, message: reported.append(str(message))
    )
    LogEntryFactory()
    spec, _ = bridge({"transaction": "x", "action": "BAD"})
    assert list(spec.queryset(None, AuditLogEntry.objects.all())) == []
    assert reported == [
        "Invalid filter: Action: Select a valid choice. BAD is not one of the available choices.; "
        "Transaction: Enter a whole number."
    ]


def test_bridge_needs_a_filterset_class(db):
    with pytest.raises(ImproperlyConfigured, match="sets no filterset_class"):
        bridge({}, filterset_class=None, model_admin=admin.ModelAdmin(NotAudited, admin.site))


def test_bridge_works_with_any_filterset_on_any_admin(superuser_client, monkeypatch):
    class TenantFilterSet(LogEntryFilterSet):
        tenant = django_filters.CharFilter()

    model_admin = admin.site.get_model_admin(AuditLogEntry)
    monkeypatch.setattr(model_admin, "filterset_class", TenantFilterSet)
    north = LogEntryFactory(tenant="north")
    LogEntryFactory(tenant="south")
    response = superuser_client.get("/admin/testapp/auditlogentry/?tenant=north")
    assert [entry.pk for entry in response.context["cl"].result_list] == [north.pk]
    assert 'name="tenant"' in response.content.decode()


def test_audited_content_type_choices_list_audited_models_only(db):
    labels = [label for _, label in audited_content_type_choices()]
    assert "Testapp | Invoice" in labels
    assert "Testapp | Special invoice" in labels
    assert not any("Not audited" in label or "Audit log entry" in label for label in labels)


def test_known_context_types_include_the_configured_labels():
    assert known_context_types() == [
        "celery-task",
        "http-request",
        "management-command",
        "restore",
        "revert",
        "unknown",
    ]


def test_log_entry_admin_uses_one_bridge(rf):
    assert LogEntryAdmin.list_filter == (FilterSetListFilter,)
    assert LogEntryAdmin.filterset_class is LogEntryFilterSet
    assert LogEntryAdmin(AuditLogEntry, admin.site).get_changelist(rf.get("/")) is LogEntryChangeList


# --- empty parameters: the URL without them -----------------------------------------------------


def test_changelist_with_empty_filter_parameters_redirects_without_them(superuser_client, log_url):
    response = superuser_client.get(
        "/admin/testapp/auditlogentry/?user=&action=UPDATE&at_after=&at_before=+&q=INV&at__year=2026&p=2&o=1"
    )
    assert response.status_code == 302
    assert response["Location"] == "/admin/testapp/auditlogentry/?action=UPDATE&q=INV&at__year=2026&p=2&o=1"


def test_changelist_with_only_empty_filter_parameters_redirects_to_the_plain_list(superuser_client, log_url):
    response = superuser_client.get(log_url(model="", user="", context_type=""))
    assert response.status_code == 302
    assert response["Location"] == log_url()


def test_changelist_keeps_the_non_empty_values_of_a_repeated_parameter(superuser_client, log_url):
    response = superuser_client.get("/admin/testapp/auditlogentry/?user=&user=alice&q=")
    assert response.status_code == 302
    assert response["Location"] == "/admin/testapp/auditlogentry/?user=alice&q="


def test_changelist_without_empty_filter_parameters_is_not_redirected(superuser_client, log_url):
    LogEntryFactory(action="UPDATE")
    assert superuser_client.get(log_url(action="UPDATE", q="")).status_code == 200
    assert superuser_client.get(log_url()).status_code == 200
    # A filter that is set but invalid stays, to be shown with its error.
    assert superuser_client.get(log_url(transaction="abc")).status_code == 200
