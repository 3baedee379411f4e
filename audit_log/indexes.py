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

#: PostgreSQL's ``minmax_multi`` operator classes (PostgreSQL 14+), by the start of the column's type.
MINMAX_MULTI_OPCLASSES = {
    "smallint": "int2_minmax_multi_ops",
    "integer": "int4_minmax_multi_ops",
    "bigint": "int8_minmax_multi_ops",
    "real": "float4_minmax_multi_ops",
    "double precision": "float8_minmax_multi_ops",
    "numeric": "numeric_minmax_multi_ops",
    "date": "date_minmax_multi_ops",
    "timestamp with time zone": "timestamptz_minmax_multi_ops",
    "timestamp": "timestamp_minmax_multi_ops",
    "time": "time_minmax_multi_ops",
    "interval": "interval_minmax_multi_ops",
    "uuid": "uuid_minmax_multi_ops",
    "inet": "inet_minmax_multi_ops",
}


def minmax_multi_opclass(db_type: str) -> str | None:
    """Return the ``minmax_multi`` operator class for a column of ``db_type`` (as Django spells it), or None."""
    db_type = db_type.lower()
    for name, opclass in MINMAX_MULTI_OPCLASSES.items():
        # The whole type, or with a modifier: "numeric(12, 2)"; not "timestamp" for "time".
        if db_type == name or db_type.startswith((f"{name}(", f"{name} (")):
            return opclass
    return None


class BrinIndex(Index):
    """A block-range (BRIN) index: tiny and almost free to maintain on append-only data.

    With ``minmax_multi=True`` each range is summarised by several intervals
    and points (PostgreSQL's ``minmax_multi`` operator classes) instead of one
    min-max interval. A heap reuses the free space a ``VACUUM`` finds at the
    end of old pages for new, smaller rows; with plain min-max each such row
    widens its old range to "now" and every later search scans that range
    (measured: a day a year ago among 10^6 entries read 14,570 pages instead
    of 96). The cost: an index about six times larger, still a fraction of a
    B-tree's; rows appended at the end of the table cost nothing more, since
    ``VACUUM`` leaves the last, partly filled range unsummarised, and rows put
    into old pages about 10 % more than with plain min-max (README, "Performance").

    Args:
        *expressions: As for ``models.Index``.
        pages_per_range: Table pages summarised by one index entry (PostgreSQL's default: 128).
        minmax_multi: Summarise each range by several intervals (needs ``fields`` of number, date/time,
            ``uuid`` or ``inet`` columns).
        **kwargs: As for ``models.Index`` (``fields``, ``name`` ...).
    """

    suffix = "brin"
    # Auto-generated names end in "_brin", one character longer than Django's "_idx".
    max_name_length = Index.max_name_length - len(Index.suffix) + len(suffix)

    def __init__(
        self, *expressions: Any, pages_per_range: int | None = None, minmax_multi: bool = False, **kwargs: Any
    ) -> None:
        if pages_per_range is not None and not (isinstance(pages_per_range, int) and pages_per_range > 0):
            raise ValueError("BrinIndex.pages_per_range must be a positive integer or None.")
        if minmax_multi and (expressions or kwargs.get("opclasses")):
            raise ValueError(
                "BrinIndex(minmax_multi=True) picks each column's operator class itself: give it fields=[...], "
                "not expressions or opclasses."
            )
        super().__init__(*expressions, **kwargs)
        self.pages_per_range = pages_per_range
        self.minmax_multi = minmax_multi

    def deconstruct(self) -> tuple[str, Sequence[Any], dict[str, Any]]:
        """Describe the index for migrations."""
        _path, args, kwargs = super().deconstruct()
        if self.pages_per_range is not None:
            kwargs["pages_per_range"] = self.pages_per_range
        if self.minmax_multi:
            kwargs["minmax_multi"] = True
        return "audit_log.indexes.BrinIndex", args, kwargs

    def create_sql(
        self, model: type[Model], schema_editor: BaseDatabaseSchemaEditor, using: str = "", **kwargs: Any
    ) -> Statement:
        """Return ``CREATE INDEX ... USING brin``, with ``pages_per_range`` and the ``minmax_multi`` classes if set.

        Raises:
            ValueError: ``minmax_multi`` on a column type PostgreSQL has no ``minmax_multi`` class for.
        """
        index: Index = self
        if self.minmax_multi:
            opclasses = []
            for field_name, _order in self.fields_orders:
                field = model._meta.get_field(field_name)
                db_type = field.db_type(schema_editor.connection) or ""
                opclass = minmax_multi_opclass(db_type)
                if opclass is None:
                    raise ValueError(
                        f"BrinIndex(minmax_multi=True) on {model._meta.label}.{field_name}: PostgreSQL has no "
                        f"minmax_multi operator class for {db_type!r}. Use it on number, date/time, uuid or inet "
                        "fields, or leave minmax_multi off for this index."
                    )
                opclasses.append(opclass)
            # Django's Index passes its own opclasses to the schema editor; a copy carries the chosen ones
            # (Index requires a name for opclasses, which an abstract model's index gets only later).
            index = self.clone()
            index.opclasses = tuple(opclasses)
        statement = Index.create_sql(index, model, schema_editor, using=" USING brin", **kwargs)
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
