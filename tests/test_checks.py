"""System checks report misconfiguration with stable ids and hints."""

import pytest
from django.core import checks
from django.db import models
from django.db.utils import ConnectionHandler
from django.test.utils import isolate_apps

from audit_log import checks as audit_checks
from audit_log.fields import AuditLogsField
from audit_log.models import AuditLoggedModel, BaseContext, BaseLogEntry
from tests.testapp.models import AuditLogContext, AuditLogEntry, Invoice, UUIDThing


def databases(**extra):
    """A connection handler with one extra database (the handler insists on a default)."""
    return ConnectionHandler({"default": {"ENGINE": "django.db.backends.dummy"}, **extra})


def ids(messages):
    return [message.id for message in messages]


def test_installed_project_passes_every_check():
    assert checks.run_checks(tags=[audit_checks.CHECK_TAG]) == []


def test_missing_settings_are_errors_with_hints(settings):
    del settings.AUDIT_LOG_CONTEXT_MODEL
    del settings.AUDIT_LOG_ENTRY_MODEL
    messages = audit_checks.check_settings()
    assert ids(messages) == ["audit_log.E001", "audit_log.E002"]
    assert "AUDIT_LOG_CONTEXT_MODEL is not set" in messages[0].msg
    assert "AUDIT_LOG_CONTEXT_MODEL = 'app_label.ModelName'" in messages[0].hint


@pytest.mark.parametrize("value", ["no_dot", "testapp.DoesNotExist"])
def test_wrong_model_settings_are_errors(settings, value):
    settings.AUDIT_LOG_ENTRY_MODEL = value
    assert ids(audit_checks.check_settings()) == ["audit_log.E002"]


def test_settings_naming_models_of_the_wrong_kind_are_errors(settings):
    settings.AUDIT_LOG_CONTEXT_MODEL = "testapp.Invoice"
    settings.AUDIT_LOG_ENTRY_MODEL = "testapp.Customer"
    assert ids(audit_checks.check_settings()) == ["audit_log.E003", "audit_log.E004"]


@isolate_apps("tests.testapp")
def test_managed_context_model_is_an_error():
    class ManagedContext(BaseContext):
        class Meta:
            app_label = "testapp"

    messages = audit_checks._check_models_pair(ManagedContext, AuditLogEntry)
    assert "audit_log.E005" in ids(messages)
    assert "managed = False" in messages[ids(messages).index("audit_log.E005")].hint


@isolate_apps("tests.testapp")
def test_context_fields_missing_from_the_entry_model_are_an_error():
    class BareEntry(BaseLogEntry):
        class Meta:
            app_label = "testapp"

    messages = audit_checks._check_models_pair(AuditLogContext, BareEntry)
    assert ids(messages) == ["audit_log.E006"]
    assert "tenant" in messages[0].msg


@isolate_apps("tests.testapp")
def test_not_null_context_fields_without_a_constant_default_are_an_error():
    class StrictContext(BaseContext):
        region = models.CharField(max_length=5)

        class Meta:
            app_label = "testapp"
            managed = False

    class StrictEntry(BaseLogEntry):
        region = models.CharField(max_length=5)

        class Meta:
            app_label = "testapp"

    messages = audit_checks._check_models_pair(StrictContext, StrictEntry)
    assert ids(messages) == ["audit_log.E013"]
    assert "region" in messages[0].msg


def test_malformed_plain_settings_are_errors():
    messages = audit_checks._check_plain_settings(
        {"AUDIT_LOG_CONTEXT_TYPE_CHOICES": "celery", "AUDIT_LOG_REQUIRE_CONTEXT": "yes"}
    )
    assert ids(messages) == ["audit_log.E011", "audit_log.E012"]
    assert audit_checks._check_plain_settings({"AUDIT_LOG_CONTEXT_TYPE_CHOICES": [("a", "A")]}) == []


def test_non_postgresql_database_with_audited_models_is_an_error():
    handler = databases(lite={"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"})
    messages = audit_checks._check_connection(handler["lite"], [Invoice])
    assert ids(messages) == ["audit_log.E007"]
    assert audit_checks._check_connection(handler["lite"], []) == []


def test_stock_backend_with_audited_models_is_a_warning():
    handler = databases(stock={"ENGINE": "django.db.backends.postgresql", "NAME": "x"})
    messages = audit_checks._check_connection(handler["stock"], [Invoice])
    assert ids(messages) == ["audit_log.W001"]
    assert "AddAuditLogging" in messages[0].hint


def test_obsolete_transaction_pooling_setting_is_a_warning(settings):
    assert "audit_log.W004" not in ids(audit_checks.check_settings())
    settings.AUDIT_LOG_TRANSACTION_POOLING = True
    [warning] = [message for message in audit_checks.check_settings() if message.id == "audit_log.W004"]
    assert "AUDIT_LOG_TRANSACTION_POOLING" in warning.msg
    assert warning.hint == "Remove AUDIT_LOG_TRANSACTION_POOLING from your settings."


@isolate_apps("tests.testapp")
def test_composite_primary_key_is_an_error():
    class Pair(AuditLoggedModel):
        pk = models.CompositePrimaryKey("left", "right")
        left = models.IntegerField()
        right = models.IntegerField()

        class Meta:
            app_label = "testapp"

    assert ids(audit_checks._check_audited_model(Pair, "text")) == ["audit_log.E008"]


@isolate_apps("tests.testapp")
def test_excluding_or_masking_unknown_fields_is_an_error():
    class Sloppy(AuditLoggedModel):
        name = models.CharField(max_length=5)
        audit_logs = AuditLogsField(to="testapp.auditlogentry", exclude=["nmae"], mask=["name", "pwd"])

        class Meta:
            app_label = "testapp"

    messages = audit_checks._check_audited_model(Sloppy, "text")
    assert ids(messages) == ["audit_log.E009"]
    assert "nmae, pwd" in messages[0].msg


def test_integer_object_id_cannot_hold_uuid_keys():
    assert ids(audit_checks._check_audited_model(UUIDThing, "bigint")) == ["audit_log.E010"]
    assert audit_checks._check_audited_model(Invoice, "bigint") == []
    assert audit_checks._check_audited_model(UUIDThing, "text") == []


def test_request_middleware_before_authentication_is_a_warning():
    auth = "django.contrib.auth.middleware.AuthenticationMiddleware"
    ours = "audit_log.middleware.RequestContextMiddleware"
    assert ids(audit_checks._check_middleware_order([ours, auth])) == ["audit_log.W003"]
    assert ids(audit_checks._check_middleware_order([ours])) == ["audit_log.W003"]
    assert audit_checks._check_middleware_order([auth, ours]) == []
    assert audit_checks._check_middleware_order([auth]) == []


def test_audit_field_rejects_a_string_for_a_list():
    with pytest.raises(TypeError, match="lists of field names"):
        AuditLogsField(exclude="password")
