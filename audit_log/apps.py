"""App configuration: registers the system checks."""

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AuditLogConfig(AppConfig):
    """The ``audit_log`` app."""

    name = "audit_log"
    verbose_name = _("Audit log")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        """Register the system checks, and the creation of log partitions ahead after ``migrate``."""
        from django.db.models.signals import post_migrate

        from . import checks, partition_health

        checks.register()
        # Sent once per app by each migrate; this app's is enough.
        post_migrate.connect(partition_health.ensure_after_migrate, sender=self, dispatch_uid="audit_log_partitions")
