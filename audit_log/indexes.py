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
from django.db.models import Index, Model


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
