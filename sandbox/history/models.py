"""The concrete audit-log models the sandbox names in its settings.

They live in an app of their own so that the shop app can be installed under
another project's log models (the sandbox's tests do that).
"""

from audit_log.models import BaseContext, BaseLogEntry


class AuditLogContext(BaseContext):
    class Meta:
        managed = False  # no table: its fields describe the context each write carries


class AuditLogEntry(BaseLogEntry):
    pass
