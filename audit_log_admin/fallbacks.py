"""What the log pages show of rows that exist but that Python cannot load.

A logged object, or an object a foreign key points to, may hold what its
model cannot turn into Python: a date past year 9999, ``'infinity'`` (which
psycopg 3 refuses to convert), a value a custom field's ``from_db_value``
rejects. Loading it raises, and the page that shows it would fail.
:func:`load_objects` loads what it can and reports the rest (shown as
"could not be loaded"), and :func:`history_object` lets an object's History
tab open for such an object all the same.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.contrib.admin.utils import unquote
from django.db import InterfaceError, OperationalError, models
from django.utils.text import capfirst
from django.utils.translation import gettext as _

if TYPE_CHECKING:
    from django.contrib.admin import ModelAdmin
    from django.http import HttpRequest

#: Errors that say nothing about the row: a failing connection, a cancelled query. Never taken for
#: "cannot be loaded".
PASSED_ON = (OperationalError, InterfaceError)


def load_objects(
    model: type[models.Model], attname: str, keys: Iterable[Any], db: str
) -> tuple[dict[Any, models.Model], set[Any]]:
    """Fetch the objects of ``model`` whose ``attname`` is one of ``keys``: one query, as a rule.

    A row that Python cannot turn into an instance (a date past year 9999,
    ``'infinity'`` with psycopg 3, a field whose ``from_db_value`` refuses
    what raw SQL wrote ...) makes that query raise. Then the keys that exist
    are read alone, and each of those objects is fetched on its own: the
    objects that load are returned, the rest reported. Only a page that shows
    such a row pays these queries.

    Args:
        model: The model.
        attname: The attribute the keys are values of (the primary key's, or
            the field a foreign key points to).
        keys: The values.
        db: The database alias.

    Returns:
        ``{key: object}`` of the objects loaded, and the keys of rows that
        exist but could not be loaded.
    """
    manager = model._base_manager.using(db)
    wanted = {f"{attname}__in": list(keys)}
    # Any exception but a failing connection (or a cancelled query): converting a row runs
    # field code (and the driver's) that may raise anything.
    try:
        return {getattr(obj, attname): obj for obj in manager.filter(**wanted)}, set()
    except PASSED_ON:
        raise
    except Exception:  # noqa: BLE001, S110  # see above: the rows are retried one by one, below
        pass
    try:
        existing = set(manager.filter(**wanted).values_list(attname, flat=True))
    except PASSED_ON:
        raise
    except Exception:  # noqa: BLE001  # not even the keys can be read: none of the objects can be shown
        return {}, set(wanted[f"{attname}__in"])
    found: dict[Any, models.Model] = {}
    unloadable: set[Any] = set()
    for key in existing:
        try:
            found[key] = manager.get(**{attname: key})
        except PASSED_ON:
            raise
        except Exception:  # noqa: BLE001  # this row is the one that cannot be loaded
            unloadable.add(key)
    return found, unloadable


@dataclass(frozen=True)
class UnloadableObject:
    """Stands in for an object whose row exists but cannot be loaded, where a page shows the object.

    Attributes:
        pk: Its primary key.
        label: What to call it ("Invoice 7 (could not be loaded)").
    """

    pk: Any
    label: str

    def __str__(self) -> str:
        return self.label


def history_object(
    model_admin: ModelAdmin[Any], request: HttpRequest, object_id: str
) -> tuple[models.Model | None, models.Model | UnloadableObject | None]:
    """Return the object whose History tab is asked for, and what the page shows as that object.

    The object is loaded as the admin does (``get_object``). If that fails,
    or finds nothing, and yet a row with that primary key is in the admin's
    queryset (one more query), the row cannot be loaded: the object is then
    an unsaved instance that holds only the primary key, enough to find its
    log entries, and the page shows an :class:`UnloadableObject`.

    Args:
        model_admin: The object's admin.
        request: The request.
        object_id: The object id from the URL (quoted).

    Returns:
        The object (or its stand-in) and what to show, or ``(None, None)`` if
        the user's queryset has no such object.
    """
    try:
        obj = model_admin.get_object(request, unquote(object_id))
    except PASSED_ON:
        raise
    except Exception:  # noqa: BLE001  # the row cannot be turned into an instance: see below
        obj = None
    if obj is not None:
        return obj, obj
    opts = model_admin.opts
    try:
        pk = opts.pk.to_python(unquote(object_id))
        queryset = model_admin.get_queryset(request)
        if not queryset.filter(pk=pk).exists():
            return None, None
    except PASSED_ON:
        raise
    except Exception:  # noqa: BLE001  # no primary key value, or no way to look: no such object
        return None, None
    stand_in = model_admin.model(pk=pk)
    stand_in._state.db = queryset.db
    stand_in._state.adding = False
    label = _("%(model)s %(id)s (could not be loaded)") % {"model": capfirst(opts.verbose_name), "id": pk}
    return stand_in, UnloadableObject(pk=pk, label=label)
