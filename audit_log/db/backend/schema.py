"""The schema editor that keeps audit triggers in step with the tables they audit."""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING, Any

from django.db.backends.postgresql import schema
from django.db.models import Field, Model

from ... import triggers
from ...conf import conf
from ...fields import AuditLogsField

if TYPE_CHECKING:
    _EditorBase = schema.DatabaseSchemaEditor
else:
    _EditorBase = object  # a mixin: the real base comes from the class it is mixed into


class AuditLogSchemaEditorMixin(_EditorBase):
    """Install, refresh and remove audit triggers as ``migrate`` changes tables.

    Mix it in front of a PostgreSQL schema editor. Triggers are installed after
    a table is created and dropped before it is deleted; whenever the columns
    of an audited table change, or its name, or the log table's, the trigger
    function is regenerated. An ``AuditLogsField`` being added or removed turns
    auditing on or off for the table.
    """

    # --- tables ---------------------------------------------------------

    def create_model(self, model: type[Model]) -> None:
        """Create the table, then its triggers if the model is audited."""
        super().create_model(model)
        if triggers.is_audited(model):
            triggers.install(self, model)

    def delete_model(self, model: type[Model]) -> None:
        """Drop the triggers of an audited model, then its table."""
        if triggers.is_audited(model):
            triggers.uninstall(self, model._meta.db_table)
        super().delete_model(model)

    def alter_db_table(self, model: type[Model], old_db_table: str, new_db_table: str) -> None:
        """Rename the table and move its triggers (named after the table) along."""
        audited = triggers.is_audited(model)
        if audited and old_db_table != new_db_table:
            triggers.uninstall(self, old_db_table)
        super().alter_db_table(model, old_db_table, new_db_table)
        if audited:
            # Also when the name is unchanged: RenameModel of a model with an
            # explicit db_table changes the content type the trigger logs.
            triggers.install(self, model)
        if self._is_log_model(model):
            self._refresh_audited(model)

    # --- columns --------------------------------------------------------

    def add_field(self, model: type[Model], field: Field[Any, Any]) -> None:
        """Add a column (or turn auditing on, for an ``AuditLogsField``) and refresh triggers."""
        # ``model`` is the state before the change: it lacks ``field``.
        super().add_field(model, field)
        if isinstance(field, AuditLogsField):
            for audited in self._with_descendants(model):
                triggers.install(self, audited, audit=field)
        elif field.column and triggers.is_audited(model):
            triggers.install(self, model, fields=[*model._meta.local_concrete_fields, field])
        if field.column and self._is_log_model(model):
            self._refresh_audited(model, entry_columns=self._columns(model) | {field.column})

    def remove_field(self, model: type[Model], field: Field[Any, Any]) -> None:
        """Remove a column (or turn auditing off, for an ``AuditLogsField``) and refresh triggers."""
        if isinstance(field, AuditLogsField):
            for audited in self._with_descendants(model):
                triggers.uninstall(self, audited._meta.db_table)
        super().remove_field(model, field)
        if not isinstance(field, AuditLogsField) and field.column and triggers.is_audited(model):
            remaining = [f for f in model._meta.local_concrete_fields if f.name != field.name]
            triggers.install(self, model, fields=remaining)
        if field.column and self._is_log_model(model):
            self._refresh_audited(model, entry_columns=self._columns(model) - {field.column})

    def alter_field(
        self, model: type[Model], old_field: Field[Any, Any], new_field: Field[Any, Any], strict: bool = False
    ) -> None:
        """Alter a column (or the audit options) and refresh triggers."""
        super().alter_field(model, old_field, new_field, strict)
        old_audit, new_audit = isinstance(old_field, AuditLogsField), isinstance(new_field, AuditLogsField)
        if old_audit or new_audit:
            for audited in self._with_descendants(model):
                if new_audit:
                    triggers.install(self, audited, audit=new_field)
                else:
                    triggers.uninstall(self, audited._meta.db_table)
            return
        # The trigger depends only on a column's name and type: changes to
        # choices, defaults or help texts (AlterField as well) need no new one.
        column_changed = old_field.column != new_field.column or old_field.db_type(
            self.connection
        ) != new_field.db_type(self.connection)
        if column_changed and triggers.is_audited(model):
            fields = [new_field if f.name == old_field.name else f for f in model._meta.local_concrete_fields]
            triggers.install(self, model, fields=fields)
        if self._is_log_model(model) and old_field.column != new_field.column:
            columns = self._columns(model) - {old_field.column}
            self._refresh_audited(model, entry_columns=columns | ({new_field.column} if new_field.column else set()))

    # --- helpers --------------------------------------------------------

    @staticmethod
    def _columns(model: type[Model]) -> set[str]:
        return {triggers.column_of(field) for field in model._meta.concrete_fields}

    @staticmethod
    def _is_log_model(model: type[Model]) -> bool:
        return model._meta.label_lower == conf.entry_model.lower()

    @staticmethod
    def _with_descendants(model: type[Model]) -> list[type[Model]]:
        """``model`` and its multi-table-inheritance children: they share its audit options."""
        label = model._meta.label_lower
        family = [model] if triggers.has_table(model) else []
        # Compare labels: historical registries may hold stale parent classes.
        family += [
            other
            for other in model._meta.apps.get_models()
            if label in {parent._meta.label_lower for parent in other._meta.get_parent_list()}
            and triggers.has_table(other)
        ]
        return family

    def _refresh_audited(self, log_model: type[Model], entry_columns: Collection[str] | None = None) -> None:
        """Regenerate every audited table's triggers after the log table changed.

        The triggers name the log table and its context columns, so they must
        follow it. Models come from the same (possibly historical) app registry
        as ``log_model``, so they match the tables as they are at this point of
        the migration.
        """
        for model in log_model._meta.apps.get_models():
            if triggers.is_audited(model):
                triggers.install(self, model, entry_columns=entry_columns)


class DatabaseSchemaEditor(AuditLogSchemaEditorMixin, schema.DatabaseSchemaEditor):
    """Django's PostgreSQL schema editor with audit-trigger management."""
