"""App config of the suite's log models."""

from django.apps import AppConfig


class AuditLogSuiteConfig(AppConfig):
    """Holds ``AUDIT_LOG_CONTEXT_MODEL`` and ``AUDIT_LOG_ENTRY_MODEL`` for Django's test suite."""

    name = "audit_log_suite"
    default_auto_field = "django.db.models.BigAutoField"
