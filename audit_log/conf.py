"""The ``AUDIT_LOG_*`` settings, read on every access so ``override_settings`` works."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

#: Placeholder model label used while a required model setting is missing, so
#: that importing the models does not crash before the system checks can say
#: what is wrong (audit_log.E001 / E002).
UNSET_MODEL = "audit_log.ModelSettingIsMissing"


class AuditLogSettings:
    """Typed accessors for the package's settings; see the README's settings table."""

    @property
    def context_model(self) -> str:
        """``AUDIT_LOG_CONTEXT_MODEL``: ``"app_label.ModelName"`` of the context model (required)."""
        return getattr(settings, "AUDIT_LOG_CONTEXT_MODEL", None) or UNSET_MODEL

    @property
    def entry_model(self) -> str:
        """``AUDIT_LOG_ENTRY_MODEL``: ``"app_label.ModelName"`` of the log-entry model (required)."""
        return getattr(settings, "AUDIT_LOG_ENTRY_MODEL", None) or UNSET_MODEL

    @property
    def require_context(self) -> bool:
        """``AUDIT_LOG_REQUIRE_CONTEXT`` (default False): refuse writes made without a context.

        Applied inside the trigger, so it takes effect when triggers are
        (re)installed: by ``migrate`` or ``manage.py audit_log_install``.
        """
        return bool(getattr(settings, "AUDIT_LOG_REQUIRE_CONTEXT", False))

    @property
    def context_type_choices(self) -> dict[str, str]:
        """``AUDIT_LOG_CONTEXT_TYPE_CHOICES``: extra display labels for context types.

        A mapping or a sequence of ``(value, label)`` pairs. Labels only: any
        context type is accepted whether it is listed or not.
        """
        raw: Any = getattr(settings, "AUDIT_LOG_CONTEXT_TYPE_CHOICES", ())
        pairs = raw.items() if isinstance(raw, Mapping) else raw
        return {str(value): str(label) for value, label in pairs}

    @property
    def seal_key(self) -> bytes | None:
        """``AUDIT_LOG_SEAL_KEY`` (default None): the HMAC key of ``audit_log_seal``, as bytes.

        A ``str`` is taken as its UTF-8 bytes; None or empty means seals are
        plain SHA-256. The key is used in this process only: it is never sent
        to the database, logged or stored (seals record a fingerprint of it).

        Raises:
            ImproperlyConfigured: If the setting is neither bytes nor str.
        """
        raw: Any = getattr(settings, "AUDIT_LOG_SEAL_KEY", None)
        if isinstance(raw, str):
            raw = raw.encode()
        elif isinstance(raw, bytearray | memoryview):
            raw = bytes(raw)
        elif raw is not None and not isinstance(raw, bytes):
            raise ImproperlyConfigured(f"AUDIT_LOG_SEAL_KEY must be bytes or str, not {type(raw).__name__}.")
        return raw or None

    @property
    def read_database(self) -> str | None:
        """``AUDIT_LOG_READ_DATABASE`` (default None): the database alias the log is read from for display.

        The admin's log pages and ``obj.audit_logs`` read there (e.g. a
        streaming replica); writes, triggers, ``revert()`` and ``restore()``
        stay on the primary (see ``audit_log.routing``). None or empty: the
        log is read where it always was (the object's or the router's
        database). audit_log.E014 reports an alias missing from ``DATABASES``.
        """
        raw: Any = getattr(settings, "AUDIT_LOG_READ_DATABASE", None)
        return str(raw) if raw else None

    @property
    def partitioning(self) -> str | None:
        """``AUDIT_LOG_PARTITIONING`` (default None): partition the log table by ``"month"``, ``"week"`` or ``"day"``.

        Read when the log table is created (by its migration) and by
        ``audit_log_partitions``; an existing table is converted with
        ``manage.py audit_log_partitions --convert``.

        Raises:
            ImproperlyConfigured: If the setting is not None or one of the three intervals.
        """
        raw: Any = getattr(settings, "AUDIT_LOG_PARTITIONING", None)
        if raw is None or raw == "":
            return None
        if raw not in PARTITION_INTERVALS:
            choices = ", ".join(repr(interval) for interval in PARTITION_INTERVALS)
            raise ImproperlyConfigured(f"AUDIT_LOG_PARTITIONING must be None, {choices}, not {raw!r}.")
        return str(raw)


#: The values of ``AUDIT_LOG_PARTITIONING`` besides None: the span of one partition.
PARTITION_INTERVALS = ("month", "week", "day")

conf = AuditLogSettings()
