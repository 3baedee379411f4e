"""``DatabaseWrapper`` of the audit-everything backend."""

from audit_log.db.backend import base

from .schema import DatabaseSchemaEditor


class DatabaseWrapper(base.DatabaseWrapper):
    """The audit-log backend with a schema editor that audits every table."""

    SchemaEditorClass = DatabaseSchemaEditor
