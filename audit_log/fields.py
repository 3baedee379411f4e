"""``AuditLogsField``: ``obj.audit_logs`` and the marker the schema editor looks for."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from django.conf import SettingsReference
from django.contrib.contenttypes.fields import GenericRelation
from django.db import DEFAULT_DB_ALIAS
from django.db.models import Model, QuerySet

from .conf import conf

#: The setting that names the log-entry model.
ENTRY_MODEL_SETTING = "AUDIT_LOG_ENTRY_MODEL"


class AuditLogsField(GenericRelation):
    """A reverse generic relation from an audited model to its log entries.

    ``AuditLoggedModel`` adds it as ``audit_logs``. It has no column, but
    unlike a plain ``GenericRelation`` it is a regular (non-private) field, so
    ``makemigrations`` writes it into migrations and the schema editor sees it
    being added or removed: that is what installs and removes the triggers.

    Redeclare it on a model to leave columns out of the log or to mask them::

        class Customer(AuditLoggedModel):
            audit_logs = AuditLogsField(exclude=["last_seen"], mask=["password"])

    Args:
        to: The log-entry model; defaults to ``AUDIT_LOG_ENTRY_MODEL``.
        exclude: Field names (or column names) never logged: their changes
            alone write no entry.
        mask: Field names (or column names) whose changes are logged without
            their values (``"**masked**"``; NULL stays NULL).
        **kwargs: Passed to ``GenericRelation`` (``related_query_name`` ...).
    """

    def __init__(
        self,
        to: Any = None,
        *,
        exclude: Sequence[str] = (),
        mask: Sequence[str] = (),
        **kwargs: Any,
    ) -> None:
        kwargs["object_id_field"] = "object_id"
        kwargs["content_type_field"] = "content_type"
        super().__init__(to or conf.entry_model, **kwargs)
        if isinstance(exclude, str) or isinstance(mask, str):
            raise TypeError("AuditLogsField(exclude=..., mask=...) take lists of field names, not a string")
        self.exclude: tuple[str, ...] = tuple(exclude)
        self.mask: tuple[str, ...] = tuple(mask)

    def contribute_to_class(self, cls: type[Model], name: str, *args: Any, **kwargs: Any) -> None:
        """Attach the field to ``cls`` as a regular field (see the class docstring)."""
        super().contribute_to_class(cls, name, *args, **kwargs)
        # GenericRelation registers itself as a private field, which migrations
        # ignore. Re-register it as a local field: it has no column (db_type is
        # None), so the schema editor creates nothing for it, but its addition
        # and removal now reach the schema editor, which manages the triggers.
        cls._meta.private_fields.remove(self)
        cls._meta.add_field(self, private=False)

    @property
    def swappable_setting(self) -> str | None:
        """Name ``AUDIT_LOG_ENTRY_MODEL`` when the field points at the configured log model.

        Like a foreign key to ``AUTH_USER_MODEL``: migrations then refer to the
        setting (``to=settings.AUDIT_LOG_ENTRY_MODEL`` and a swappable
        dependency), so an app's migrations work with any project's log model.
        """
        return ENTRY_MODEL_SETTING if self._label().lower() == conf.entry_model.lower() else None

    def _label(self) -> str:
        model = self.remote_field.model
        return model if isinstance(model, str) else model._meta.label

    def deconstruct(self) -> tuple[str, str, list[Any], dict[str, Any]]:
        """Describe the field for migrations: the entry model (by setting) and the audit options."""
        name = self.name
        label = self._label()
        setting = self.swappable_setting
        kwargs: dict[str, Any] = {"to": SettingsReference(label, setting) if setting else label.lower()}
        if self.exclude:
            kwargs["exclude"] = list(self.exclude)
        if self.mask:
            kwargs["mask"] = list(self.mask)
        if self.remote_field.related_query_name:
            kwargs["related_query_name"] = self.remote_field.related_query_name
        return name, "audit_log.fields.AuditLogsField", [], kwargs

    def bulk_related_objects(self, objs: Iterable[Model], using: str = DEFAULT_DB_ALIAS) -> QuerySet[Any]:
        """Return nothing: deleting an audited object must never delete its log."""
        return self.remote_field.model._base_manager.db_manager(using).none()
