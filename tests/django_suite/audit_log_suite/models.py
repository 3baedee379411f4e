"""The context and log-entry models every audited table of Django's test suite logs to."""

from audit_log.models import BaseContext, BaseLogEntry


class AuditLogContext(BaseContext):
    class Meta:
        managed = False


class AuditLogEntry(BaseLogEntry):
    pass
