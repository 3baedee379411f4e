"""App configuration: registers the log-entry admin unless told not to."""

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AuditLogAdminConfig(AppConfig):
    """The ``audit_log_admin`` app."""

    name = "audit_log_admin"
    verbose_name = _("Audit log admin")

    def ready(self) -> None:
        """Register ``LogEntryAdmin`` for the configured entry model (see ``AUDIT_LOG_ADMIN_REGISTER``)."""
        from .admin import register_log_entry_admin

        register_log_entry_admin()
