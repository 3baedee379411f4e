"""Migration operations that install or remove audit triggers by hand.

They work with any PostgreSQL backend, including Django's stock
``django.db.backends.postgresql``, for projects that cannot use
``audit_log.db.backend``. With the stock backend, Django does not refresh the
triggers when the audited table's columns change: add another
``AddAuditLogging`` after such changes (it replaces what is there).
"""

from __future__ import annotations

from typing import Any

from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.operations.base import Operation
from django.db.migrations.state import ProjectState

from ... import triggers
from ...fields import AuditLogsField


class _AuditLoggingOperation(Operation):
    reversible = True
    reduces_to_sql = True
    atomic = True

    def __init__(self, model: str) -> None:
        self.model = model

    @property
    def model_name_lower(self) -> str:
        return self.model.lower()

    def deconstruct(self) -> tuple[str, list[Any], dict[str, Any]]:
        return self.__class__.__name__, [], {"model": self.model}

    def state_forwards(self, app_label: str, state: ProjectState) -> None:
        """Change nothing: triggers are not part of Django's model state."""

    def references_model(self, name: str, app_label: str) -> bool:
        return name.lower() == self.model_name_lower

    def _install(self, app_label: str, editor: BaseDatabaseSchemaEditor, state: ProjectState) -> None:
        model = state.apps.get_model(app_label, self.model)
        if self.allow_migrate_model(editor.connection.alias, model):
            audit = triggers.audit_field(model)
            if audit is None:
                # The model need not subclass AuditLoggedModel: log all its columns.
                audit = AuditLogsField()
            triggers.install(editor, model, audit=audit, by_operation=True)

    def _uninstall(self, app_label: str, editor: BaseDatabaseSchemaEditor, state: ProjectState) -> None:
        model = state.apps.get_model(app_label, self.model)
        if self.allow_migrate_model(editor.connection.alias, model):
            triggers.uninstall(editor, model._meta.db_table)


class AddAuditLogging(_AuditLoggingOperation):
    """Install the audit triggers on a model's table.

    Args:
        model: The model's name, in this migration's app.
    """

    def database_forwards(
        self, app_label: str, schema_editor: BaseDatabaseSchemaEditor, from_state: ProjectState, to_state: ProjectState
    ) -> None:
        self._install(app_label, schema_editor, to_state)

    def database_backwards(
        self, app_label: str, schema_editor: BaseDatabaseSchemaEditor, from_state: ProjectState, to_state: ProjectState
    ) -> None:
        self._uninstall(app_label, schema_editor, from_state)

    def describe(self) -> str:
        return f"Add audit logging to {self.model}"

    @property
    def migration_name_fragment(self) -> str:
        return f"add_audit_logging_{self.model_name_lower}"


class RemoveAuditLogging(_AuditLoggingOperation):
    """Remove the audit triggers from a model's table.

    Args:
        model: The model's name, in this migration's app.
    """

    def database_forwards(
        self, app_label: str, schema_editor: BaseDatabaseSchemaEditor, from_state: ProjectState, to_state: ProjectState
    ) -> None:
        self._uninstall(app_label, schema_editor, from_state)

    def database_backwards(
        self, app_label: str, schema_editor: BaseDatabaseSchemaEditor, from_state: ProjectState, to_state: ProjectState
    ) -> None:
        self._install(app_label, schema_editor, to_state)

    def describe(self) -> str:
        return f"Remove audit logging from {self.model}"

    @property
    def migration_name_fragment(self) -> str:
        return f"remove_audit_logging_{self.model_name_lower}"
