from django.apps import AppConfig


class HistoryConfig(AppConfig):
    """The audit log's context and entry models (``AUDIT_LOG_CONTEXT_MODEL`` / ``AUDIT_LOG_ENTRY_MODEL``)."""

    name = "sandbox.history"
    label = "history"
    verbose_name = "Audit log"
