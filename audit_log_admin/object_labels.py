"""What the entry page calls the objects it names: the heading, the breadcrumb and "Same transaction".

An object is called by its ``str()``, after its model's name ("Invoice
INV-7"), except where that says nothing: Django's default ``__str__``
("Invoice object (7)") becomes "Invoice 7", as the rest of the admin names
objects it has no name for. An object that no longer exists is called by the
``str()`` of the row its DELETE entry logged, when that needs no query (a
``__str__`` that reads a related object or a column the log does not hold
gives up), else "Invoice 7"; either way "(deleted)" follows.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from django.db import connections, models
from django.utils.translation import gettext as _

from audit_log.models import Action
from audit_log.sql import MASKED_VALUE, bare_name
from audit_log.triggers import audit_field, resolve_columns

if TYPE_CHECKING:
    from audit_log.models import BaseLogEntry

    from .diff import DiffFormatter


@dataclass(frozen=True)
class ObjectLabel:
    """How a page names one logged object.

    Attributes:
        model: The model's verbose name, capitalized (the table name if the model is gone).
        name: The object's ``str()``; "" when it has none worth showing
            (Django's default, or a deleted object the log cannot name).
        object_id: The logged primary key, as text.
        state: ``"live"``, ``"deleted"`` or ``"unloadable"`` (the row exists
            but cannot be loaded).
        url: The object's admin page, or "".
    """

    model: str
    name: str
    object_id: str
    state: Literal["live", "deleted", "unloadable"] = "live"
    url: str = ""

    @property
    def short(self) -> str:
        """Name the object where its model is already shown: "INV-7", "Invoice 7", "INV-7 (deleted)"."""
        return self._with_state(self.name or self._by_id())

    @property
    def full(self) -> str:
        """Name the object with its model: "Invoice INV-7", "Invoice 7", "Invoice INV-7 (deleted)"."""
        return self._with_state(f"{self.model} {self.name}" if self.name else self._by_id())

    def _by_id(self) -> str:
        return f"{self.model} {self.object_id}"

    def _with_state(self, text: str) -> str:
        if self.state == "deleted":
            return _("%(object)s (deleted)") % {"object": text}
        if self.state == "unloadable":
            # Named by its id alone, as the formatter names it on every other page.
            return _("%(model)s %(id)s (could not be loaded)") % {"model": self.model, "id": self.object_id}
        return text


def is_default_str(obj: models.Model, text: str) -> bool:
    """Return True if ``text`` is what Django's ``Model.__str__`` makes of ``obj`` ("Invoice object (7)")."""
    return text == f"{type(obj).__name__} object ({obj.pk})"


def label_object(formatter: DiffFormatter, entry: BaseLogEntry, *, deleted_row: Any = None) -> ObjectLabel:
    """Name the object of ``entry`` (call ``formatter.prefetch([...], objects=True)`` first).

    Args:
        formatter: The page's formatter, which holds the prefetched objects.
        entry: The log entry.
        deleted_row: What the object's DELETE entry logged (its ``changes``),
            if the page has it: names an object that no longer exists.

    Returns:
        The label.
    """
    model = formatter.format_model(entry)
    obj = formatter.logged_object(entry)
    if obj is not None:
        text = formatter.object_text(obj)
        name = "" if is_default_str(obj, text) else text
        return ObjectLabel(model=model, name=name, object_id=entry.object_id, url=formatter.admin_url(obj))
    if formatter.object_unloadable(entry):
        return ObjectLabel(model=model, name="", object_id=entry.object_id, state="unloadable")
    model_class = formatter.model_info(entry).model
    name = ""
    # A many-to-many entry's row is the link table's, not the object's.
    if model_class is not None and isinstance(deleted_row, Mapping) and not formatter.is_link(entry):
        name = logged_str(model_class, deleted_row, entry.object_id, db=entry._state.db or "default")
    return ObjectLabel(model=model, name=name, object_id=entry.object_id, state="deleted")


def deleted_row(entries: models.QuerySet[Any], entry: BaseLogEntry) -> Any:
    """Return the row the DELETE entry of ``entry``'s object logged, if the object has one (else None).

    A DELETE entry logged its own row; for any other entry this is one query
    on the per-object index. Only asked for when the object no longer exists.

    Args:
        entries: The log entries the user may see.
        entry: The entry whose object is gone.

    Returns:
        The DELETE entry's ``changes``, or None.
    """
    if entry.action == Action.DELETE:
        return entry.changes
    found = (
        entries.filter(content_type_id=entry.content_type_id, object_id=entry.object_id, action=Action.DELETE)
        .order_by("-id")
        .values_list("changes", flat=True)[:1]
    )
    return next(iter(found), None)


def logged_str(model: type[models.Model], row: Mapping[str, Any], object_id: str, *, db: str) -> str:
    """Return ``str()`` of an instance built from a logged row, or "" if that needs more than the row.

    The instance holds the logged columns converted by their fields' ``to_python``;
    masked columns, columns no field has and values a field refuses are left
    deferred. ``__str__`` runs with every query refused, so one that reads a
    deferred column or a related object gives up instead of costing a query.

    Args:
        model: The object's model.
        row: The logged values by column.
        object_id: The logged primary key (used if the row lacks it).
        db: The database alias the instance belongs to.

    Returns:
        The text, or "" (also for Django's default ``__str__``).
    """
    audit = audit_field(model)
    masked = set(resolve_columns(model, audit.mask)[0]) if audit is not None else set()
    fields = {bare_name(f.column): f for f in model._meta.concrete_fields if f.column}
    known: dict[str, Any] = {}
    for column, value in row.items():
        model_field = fields.get(column)
        if model_field is None or column in masked or value == MASKED_VALUE:
            continue
        # Any exception: a field's to_python may raise anything on data it did not expect.
        with contextlib.suppress(Exception):
            known[model_field.attname] = model_field.to_python(value)
    pk = model._meta.pk
    if pk is not None and pk.attname not in known:
        with contextlib.suppress(Exception):
            known[pk.attname] = pk.to_python(object_id)
    names = [f.attname for f in model._meta.concrete_fields if f.attname in known]
    try:
        with _no_queries():
            instance = model.from_db(db, names, [known[name] for name in names])
            text = str(instance)
    except Exception:  # noqa: BLE001  # a refused query, or a __str__ that fails on partial data: no name
        return ""
    return "" if is_default_str(instance, text) else text


class _QueryRefused(Exception):  # noqa: N818  # not an error: the signal to give up
    """Raised instead of running a query while a deleted object's ``str()`` is built."""


@contextlib.contextmanager
def _no_queries() -> Iterator[None]:
    """Refuse every query on every connection inside the block."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise _QueryRefused

    with contextlib.ExitStack() as stack:
        for connection in connections.all():
            stack.enter_context(connection.execute_wrapper(refuse))
        yield
