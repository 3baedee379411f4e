"""A BRIN index for the log table that needs nothing from ``django.contrib.postgres``.

Django 6 requires ``"django.contrib.postgres"`` in ``INSTALLED_APPS`` for its
own ``BrinIndex`` (check ``postgres.E005``); the log's indexes must not impose
that on every project.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.backends.ddl_references import Statement
from django.db.models import Index, Model, Q


class BrinIndex(Index):
    """A block-range (BRIN) index: tiny and almost free to maintain on append-only data.

    Args:
        *expressions: As for ``models.Index``.
        pages_per_range: Table pages summarised by one index entry (PostgreSQL's default: 128).
        **kwargs: As for ``models.Index`` (``fields``, ``name`` ...).
    """

    suffix = "brin"
    # Auto-generated names end in "_brin", one character longer than Django's "_idx".
    max_name_length = Index.max_name_length - len(Index.suffix) + len(suffix)

    def __init__(self, *expressions: Any, pages_per_range: int | None = None, **kwargs: Any) -> None:
        if pages_per_range is not None and not (isinstance(pages_per_range, int) and pages_per_range > 0):
            raise ValueError("BrinIndex.pages_per_range must be a positive integer or None.")
        super().__init__(*expressions, **kwargs)
        self.pages_per_range = pages_per_range

    def deconstruct(self) -> tuple[str, Sequence[Any], dict[str, Any]]:
        """Describe the index for migrations."""
        _path, args, kwargs = super().deconstruct()
        if self.pages_per_range is not None:
            kwargs["pages_per_range"] = self.pages_per_range
        return "audit_log.indexes.BrinIndex", args, kwargs

    def create_sql(
        self, model: type[Model], schema_editor: BaseDatabaseSchemaEditor, using: str = "", **kwargs: Any
    ) -> Statement:
        """Return ``CREATE INDEX ... USING brin``, with ``pages_per_range`` if set."""
        statement = super().create_sql(model, schema_editor, using=" USING brin", **kwargs)
        if self.pages_per_range is not None:
            extra = f" WITH (pages_per_range = {int(self.pages_per_range)}){statement.parts['extra']}"
            statement.parts["extra"] = extra  # type: ignore[assignment]  # the stubs type every part as a Table
        return statement


class DeletionsIndex(Index):
    """A partial B-tree over the log's DELETE entries only: ``(fields) WHERE action = 'DELETE'``.

    The admin's "Recover deleted" list pages a model's deletions newest first;
    without this it walks the per-object index past every other entry of that
    model, which grows with the log while deletions may be rare. Only DELETE
    entries are written to it, so every other audited write pays nothing.

    Django requires a ``name`` for an index with a ``condition``; this class
    fixes its condition itself so that, like the log's other indexes, it can
    sit in the abstract ``BaseLogEntry`` and be named after each concrete model.

    Args:
        *expressions: As for ``models.Index``.
        **kwargs: As for ``models.Index`` (``fields``, ``name`` ...), without ``condition``.
    """

    suffix = "del"

    def __init__(self, *expressions: Any, **kwargs: Any) -> None:
        if "condition" in kwargs:
            raise ValueError("DeletionsIndex sets its own condition (action = 'DELETE').")
        super().__init__(*expressions, **kwargs)
        self.condition = Q(action="DELETE")

    def deconstruct(self) -> tuple[str, Sequence[Any], dict[str, Any]]:
        """Describe the index for migrations (its condition is implied by the class)."""
        _path, args, kwargs = super().deconstruct()
        kwargs.pop("condition", None)
        return "audit_log.indexes.DeletionsIndex", args, kwargs
