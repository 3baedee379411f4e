"""A schema editor that audits every table it creates, for running Django's own test suite."""

from __future__ import annotations

import functools

from django.db.models import CompositePrimaryKey, Model

from audit_log import triggers
from audit_log.conf import conf
from audit_log.db.backend import schema
from audit_log.fields import AuditLogsField


@functools.cache
def _audit_everything() -> AuditLogsField:
    # One default field for every table: no excluded or masked columns.
    return AuditLogsField()


class DatabaseSchemaEditor(schema.DatabaseSchemaEditor):
    """audit_log's schema editor, auditing every table that has a model of its own.

    Left out: the log table (its trigger would log its own inserts, without
    end), tables of models meant for another database vendor, and composite
    primary keys, which audit_log refuses by design (check ``audit_log.E008``).
    """

    def audit_options(self, model: type[Model]) -> AuditLogsField | None:
        """Return the model's own ``AuditLogsField`` or a default one, for every table but the log's."""
        opts = model._meta
        if not triggers.has_table(model) or opts.label_lower == conf.entry_model.lower():
            return None
        if opts.required_db_vendor not in (None, self.connection.vendor):
            return None
        if isinstance(opts.pk, CompositePrimaryKey):
            return None
        return triggers.audit_field(model) or _audit_everything()
