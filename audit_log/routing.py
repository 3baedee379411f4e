"""Which database the log is read from, and which one revert and restore must use.

``AUDIT_LOG_READ_DATABASE`` names a database alias, typically a streaming
replica of the primary, that the admin's log pages and ``obj.audit_logs``
read the log from. Everything that writes stays on the primary: the triggers
(they run where the audited rows are written), and ``revert()`` /
``restore()``, which rebuild the state they write back from the primary's
log, never from a replica that may lag behind it.

The read database is taken to be a copy of the database the log is written
on (``router.db_for_write`` of the log-entry model, ``"default"`` without
routers). Objects that live on another database (several primaries) read
their log where they live, as they did without the setting.

Without the setting nothing changes: the log is read from the object's
database, or where ``DATABASE_ROUTERS`` send reads of the log-entry model.
A primary/replica router that sends every read to a replica therefore also
sends the log pages there; ``revert()`` and ``restore()`` still ask the
router for the database to *write* (:func:`primary_database`), so they read
and write the primary under such a router too.
"""

from __future__ import annotations

from typing import Any, TypeVar

from django.db import router
from django.db.models import Model, QuerySet

from .conf import conf
from .loading import get_log_entry_model

_QS = TypeVar("_QS", bound=QuerySet[Any])


def log_primary_database() -> str:
    """Return the alias the log is written on, as the routers say (``"default"`` without routers)."""
    return router.db_for_write(get_log_entry_model())


def log_read_database(instance: Model | None = None) -> str:
    """Return the alias to read the log from for display (the admin, ``obj.audit_logs``).

    Args:
        instance: The object whose log is read, if any: an object loaded
            from a database other than the log's primary (or the read
            database) reads its log there.

    Returns:
        ``AUDIT_LOG_READ_DATABASE`` when set and it covers ``instance``; else
        the object's database; else the routers' choice for reading the
        log-entry model.
    """
    read = conf.read_database
    source = instance._state.db if instance is not None else None
    if read and (source is None or source == read or source == log_primary_database()):
        return read
    if source:
        return source
    return router.db_for_read(get_log_entry_model(), instance=instance)


def for_display(queryset: _QS, instance: Model | None = None) -> _QS:
    """Return ``queryset`` reading from ``AUDIT_LOG_READ_DATABASE``, unless it names a database already.

    Without the setting ``queryset`` is returned as it is (the routers decide, as before).

    Args:
        queryset: A queryset of log entries (or of rows read alongside them).
        instance: As for :func:`log_read_database`.
    """
    # _db: what using() set (None: the routers decide); private, and missing from django-stubs.
    # An explicit .using() wins, as everywhere in Django.
    if not conf.read_database or getattr(queryset, "_db", None) is not None:
        return queryset
    return queryset.using(log_read_database(instance))


def primary_database(model: type[Model], instance: Model | None = None) -> str:
    """Return the alias ``model``'s rows are written on: where revert and restore read and write.

    Never the read database: an object or entry fetched from it (a replica
    that may lag) is mapped back to the database the routers write ``model``
    to. An instance from any other database keeps it (the routers may still
    say otherwise, as for any write).

    Args:
        model: The audited model to be written.
        instance: The object or log entry the caller holds, if any.
    """
    read = conf.read_database
    if instance is not None and instance._state.db and instance._state.db != read:
        return router.db_for_write(model, instance=instance)
    return router.db_for_write(model)
