"""``DatabaseWrapper`` for ``ENGINE = "audit_log.db.backend"``."""

from django.db.backends.postgresql import base

from .schema import DatabaseSchemaEditor


class DatabaseWrapper(base.DatabaseWrapper):
    """Django's PostgreSQL backend with the audit-log schema editor."""

    SchemaEditorClass = DatabaseSchemaEditor
