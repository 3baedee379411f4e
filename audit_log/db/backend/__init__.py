"""A PostgreSQL database backend whose schema editor installs the audit triggers.

Use it as ``ENGINE = "audit_log.db.backend"``. Projects with a backend of their
own can mix :class:`audit_log.db.backend.schema.AuditLogSchemaEditorMixin`
into their schema editor instead.
"""
