"""The schema editor that keeps audit triggers in step with the tables they audit."""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING, Any

from django.db.backends.postgresql import schema
from django.db.models import Field, Model

from ... import guard, m2m, partitions, sql, triggers
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
    auditing on or off for the table, and for the auto-created tables of the
    model's many-to-many fields (changing its ``m2m_exclude`` for those named).
    """

    # --- which tables -----------------------------------------------------

    def audit_options(self, model: type[Model]) -> AuditLogsField | None:
        """Return the ``AuditLogsField`` whose options audit ``model``'s table, or None if it is not audited.

        The auto-created table of a many-to-many field is audited with the
        options of the model declaring the field (as this method gives them),
        unless they name the field in ``m2m_exclude``.

        Override it to audit more (``tests/django_suite`` audits every table
        Django's own test suite creates this way).
        """
        if not triggers.has_table(model):
            return None
        link = m2m.through_link(model)
        if link is not None:
            return m2m.link_audit(link, self.audit_options(link.parent))
        return triggers.audit_field(model)

    # --- tables ---------------------------------------------------------

    def create_model(self, model: type[Model]) -> None:
        """Create the table, then its triggers if the model is audited (or its guard, for the log).

        With ``AUDIT_LOG_PARTITIONING`` set, the log table is created
        partitioned on ``at``, with its default partition and the partitions
        of the current interval and ``partitions.DEFAULT_AHEAD`` more. Its
        indexes are created on the parent afterwards (Django defers them),
        so every partition, now or later, gets each of them.
        """
        super().create_model(model)
        if audit := self.audit_options(model):
            triggers.install(self, model, audit=audit)
        if self._is_log_model(model):
            guard.install(self, model)
            if interval := self._log_partitioning(model):
                partitions.create_partitions(
                    self.connection,
                    model._meta.db_table,
                    interval,
                    ahead=partitions.DEFAULT_AHEAD,
                    schema_editor=self,
                    at_column=self._at_column(model),
                )

    def table_sql(self, model: type[Model]) -> tuple[str, list[Any]]:
        """Return ``CREATE TABLE``; for a partitioned log: key ``(id, at)`` and ``PARTITION BY RANGE (at)``.

        A partitioned table's unique keys must include the partition key, so
        the database key is ``(id, at)`` while Django keeps ``id`` as the
        primary key: the identity sequence alone makes it unique.
        """
        statement, params = super().table_sql(model)
        if not self._log_partitioning(model):
            return statement, params
        pk, at = model._meta.pk, self._at_column(model)
        assert pk is not None  # a concrete model always has one
        # The definition list ends at the last parenthesis (a tablespace clause may follow).
        end = statement.rindex(")")
        key = f", PRIMARY KEY ({self.quote_name(pk.column or pk.name)}, {self.quote_name(at)})"
        head, tail = statement[:end] + key + ")", statement[end + 1 :]
        return f"{head} {partitions.partition_by_clause(at)}{tail}", params

    def column_sql(
        self, model: type[Model], field: Field[Any, Any], include_default: bool = False
    ) -> tuple[None, None] | tuple[str, list[Any]]:
        """Return a column's definition; a partitioned log's ``id`` without its own PRIMARY KEY (see table_sql)."""
        result = super().column_sql(model, field, include_default)
        definition, params = result
        if definition is None or not (field.primary_key and self._log_partitioning(model)):
            return result
        if " PRIMARY KEY" not in definition:  # pragma: no cover  # Django has always written it inline
            raise NotImplementedError(f"Unexpected primary key column definition: {definition}")
        return definition.replace(" PRIMARY KEY", "", 1), list(params or [])

    def delete_model(self, model: type[Model]) -> None:
        """Drop the triggers of an audited model, then its table."""
        if self.audit_options(model):
            triggers.uninstall(self, model._meta.db_table)
        if self._is_log_model(model):
            guard.uninstall(self, model._meta.db_table)
        super().delete_model(model)

    def alter_db_table(self, model: type[Model], old_db_table: str, new_db_table: str) -> None:
        """Rename the table and move its triggers (named after the table) along."""
        audit = self.audit_options(model)
        renamed = old_db_table != new_db_table
        if audit and renamed:
            triggers.uninstall(self, old_db_table)
        if self._is_log_model(model) and renamed:
            guard.uninstall(self, old_db_table)
        super().alter_db_table(model, old_db_table, new_db_table)
        if audit and renamed:
            # Django passes the model as it is after the change (RenameModel,
            # AlterModelTable) or as it was (an auto-created many-to-many
            # table, from _alter_many_to_many): the new name is the one given.
            triggers.install(self, model, audit=audit, table=new_db_table)
        elif audit:
            # Same table: RenameModel of a model with an explicit db_table.
            # Only what the function logs changes (its content type's name).
            triggers.install_function(self, model, audit=audit)
        if self._is_log_model(model):
            self._refresh_audited(model, table=new_db_table)

    def _alter_many_to_many(
        self, model: type[Model], old_field: Field[Any, Any], new_field: Field[Any, Any], strict: bool
    ) -> None:
        """Repoint a many-to-many field (or follow a renamed model); its table's function then follows the new field."""
        super()._alter_many_to_many(model, old_field, new_field, strict)  # type: ignore[misc]  # private in the stubs
        # Django renamed the table with the old through model (see
        # alter_db_table), and then its columns: the function names the old
        # model's content type and key column. (A private hook of Django's
        # schema editor, unchanged since Django 1.7; RenameModel calls it too.)
        through = getattr(new_field.remote_field, "through", None)
        if isinstance(through, type) and (audit := self.audit_options(through)):
            triggers.install_function(self, through, audit=audit)

    # --- columns --------------------------------------------------------

    def add_field(self, model: type[Model], field: Field[Any, Any]) -> None:
        """Add a column (or turn auditing on, for an ``AuditLogsField``) and refresh triggers.

        A many-to-many field's table is created by ``create_model``, which
        installs its triggers when the model is audited.
        """
        # ``model`` is the state before the change: it lacks ``field``.
        self._open_log_for(model)
        super().add_field(model, field)
        if isinstance(field, AuditLogsField):
            self._audit_family(model, old=None, new=field)
        elif field.column and (audit := self.audit_options(model)):
            triggers.refresh(self, model, fields=[*model._meta.local_concrete_fields, field], audit=audit)
        if field.column and self._is_log_model(model):
            self._refresh_audited(model, entry_columns=self._columns(model) | {self._column(field)})

    def remove_field(self, model: type[Model], field: Field[Any, Any]) -> None:
        """Remove a column (or turn auditing off, for an ``AuditLogsField``) and refresh triggers.

        A many-to-many field's table is dropped by ``delete_model``, which
        removes its triggers first.
        """
        if isinstance(field, AuditLogsField):
            self._audit_family(model, old=field, new=None)
        self._open_log_for(model)
        super().remove_field(model, field)
        if not isinstance(field, AuditLogsField) and field.column and (audit := self.audit_options(model)):
            remaining = [f for f in model._meta.local_concrete_fields if f.name != field.name]
            triggers.refresh(self, model, fields=remaining, audit=audit)
        if field.column and self._is_log_model(model):
            self._refresh_audited(model, entry_columns=self._columns(model) - {self._column(field)})

    def alter_field(
        self, model: type[Model], old_field: Field[Any, Any], new_field: Field[Any, Any], strict: bool = False
    ) -> None:
        """Alter a column (or the audit options) and refresh triggers."""
        self._open_log_for(model)
        super().alter_field(model, old_field, new_field, strict)
        if isinstance(old_field, AuditLogsField) or isinstance(new_field, AuditLogsField):
            self._audit_family(
                model,
                old=old_field if isinstance(old_field, AuditLogsField) else None,
                new=new_field if isinstance(new_field, AuditLogsField) else None,
            )
            return
        # The trigger depends only on a column's name and type: changes to
        # choices, defaults or help texts (AlterField as well) need no new one,
        # and refresh() skips the rest when the SQL comes out the same.
        column_changed = old_field.column != new_field.column or old_field.db_type(
            self.connection
        ) != new_field.db_type(self.connection)
        if column_changed and (audit := self.audit_options(model)):
            # ``model`` is the state before the change: swap in the new field
            # (for a RenameField its name differs too). The key and the
            # excluded and masked columns are then found among these.
            fields = [new_field if f.name == old_field.name else f for f in model._meta.local_concrete_fields]
            triggers.refresh(self, model, fields=fields, audit=audit)
        if self._is_log_model(model) and old_field.column != new_field.column:
            columns = self._columns(model) - {self._column(old_field)}
            self._refresh_audited(
                model, entry_columns=columns | ({self._column(new_field)} if new_field.column else set())
            )

    # --- helpers --------------------------------------------------------

    @staticmethod
    def _column(field: Field[Any, Any]) -> str:
        return sql.bare_name(triggers.column_of(field))

    @classmethod
    def _columns(cls, model: type[Model]) -> set[str]:
        return {cls._column(field) for field in model._meta.concrete_fields}

    @staticmethod
    def _is_log_model(model: type[Model]) -> bool:
        return model._meta.label_lower == conf.entry_model.lower()

    @classmethod
    def _log_partitioning(cls, model: type[Model]) -> str | None:
        """The partition interval if ``model`` is the log and ``AUDIT_LOG_PARTITIONING`` is set, else None."""
        return conf.partitioning if cls._is_log_model(model) else None

    @staticmethod
    def _at_column(model: type[Model]) -> str:
        field = model._meta.get_field("at")
        return sql.bare_name(getattr(field, "column", None) or "at")

    def _audit_family(self, model: type[Model], *, old: AuditLogsField | None, new: AuditLogsField | None) -> None:
        """Apply a change of ``model``'s ``AuditLogsField`` (added, removed or altered) to its tables.

        The tables of ``model``, its multi-table-inheritance children and their
        auto-created many-to-many tables get triggers for the new options
        (``new``; None: the field is removed), or lose them. A many-to-many
        table's triggers are removed only if the old options (``old``) audited
        it, so an unaudited table gets no statements.
        """
        for audited in self._with_descendants(model):
            if new is not None:
                triggers.install(self, audited, audit=new)
            else:
                triggers.uninstall(self, audited._meta.db_table)
            for link in m2m.auto_created_links(audited):
                if not triggers.has_table(link.through):
                    continue
                if m2m.link_audit(link, new) is not None:
                    triggers.install(self, link.through, audit=new)
                elif m2m.link_audit(link, old) is not None:
                    triggers.uninstall(self, link.through._meta.db_table)

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

    def _open_log_for(self, model: type[Model]) -> None:
        # Django fills a column made NOT NULL with an UPDATE: let it past the
        # log's guard for this migration's transaction (the record says so).
        if self._is_log_model(model) and self.connection.in_atomic_block:
            self.execute(guard.maintenance_on())

    def _refresh_audited(
        self, log_model: type[Model], entry_columns: Collection[str] | None = None, table: str | None = None
    ) -> None:
        """Regenerate every audited table's triggers after the log table changed.

        The triggers name the log table and its context columns, so they must
        follow it. Models come from the same (possibly historical) app registry
        as ``log_model``, so they match the tables as they are at this point of
        the migration.
        """
        for model in log_model._meta.apps.get_models(include_auto_created=True):
            if (audit := self.audit_options(model)) and not self._is_log_model(model):
                triggers.install(self, model, entry_columns=entry_columns, audit=audit)
        guard.install(self, log_model, entry_columns=entry_columns, table=table)


class DatabaseSchemaEditor(AuditLogSchemaEditorMixin, schema.DatabaseSchemaEditor):
    """Django's PostgreSQL schema editor with audit-trigger management."""
