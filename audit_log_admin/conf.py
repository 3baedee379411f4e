"""The ``AUDIT_LOG_ADMIN_*`` settings, read on every access so ``override_settings`` works."""

from __future__ import annotations

import datetime
import math
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

if TYPE_CHECKING:
    from .diff import DiffFormatter

#: Default of ``AUDIT_LOG_ADMIN_FORMATTER``.
DEFAULT_FORMATTER = "audit_log_admin.diff.DiffFormatter"

#: Default of ``AUDIT_LOG_ADMIN_EXACT_COUNT_LIMIT``.
DEFAULT_EXACT_COUNT_LIMIT = 10_000

#: Default of ``AUDIT_LOG_ADMIN_STATEMENT_TIMEOUT``, in seconds.
DEFAULT_STATEMENT_TIMEOUT = 5


class AuditLogAdminSettings:
    """Typed accessors for the admin's settings; see the README's settings table."""

    @property
    def register(self) -> bool:
        """``AUDIT_LOG_ADMIN_REGISTER`` (default True): register ``LogEntryAdmin`` on ``admin.site``.

        Set it to False to register your own subclass of
        ``audit_log_admin.admin.LogEntryAdmin`` (or none at all).
        """
        return bool(getattr(settings, "AUDIT_LOG_ADMIN_REGISTER", True))

    @property
    def formatter_class(self) -> type[DiffFormatter]:
        """``AUDIT_LOG_ADMIN_FORMATTER``: dotted path of the ``DiffFormatter`` (sub)class every page uses.

        Raises:
            ImproperlyConfigured: If the path does not name a ``DiffFormatter``.
        """
        from .diff import DiffFormatter

        path = getattr(settings, "AUDIT_LOG_ADMIN_FORMATTER", None) or DEFAULT_FORMATTER
        try:
            formatter = import_string(path) if isinstance(path, str) else path
        except ImportError as error:
            raise ImproperlyConfigured(f"AUDIT_LOG_ADMIN_FORMATTER = {path!r} cannot be imported: {error}") from None
        if not (isinstance(formatter, type) and issubclass(formatter, DiffFormatter)):
            raise ImproperlyConfigured(
                f"AUDIT_LOG_ADMIN_FORMATTER = {path!r} must name a subclass of audit_log_admin.diff.DiffFormatter."
            )
        return formatter

    @property
    def exact_count_limit(self) -> int:
        """``AUDIT_LOG_ADMIN_EXACT_COUNT_LIMIT`` (default 10,000): count exactly up to this many entries.

        Lists with more entries show the planner's estimate (the log changelist)
        or "more than N" (an object's history) instead of running a ``COUNT(*)``
        over all of them.
        """
        return max(1, int(getattr(settings, "AUDIT_LOG_ADMIN_EXACT_COUNT_LIMIT", DEFAULT_EXACT_COUNT_LIMIT)))

    @property
    def show_unknown_models(self) -> bool:
        """``AUDIT_LOG_ADMIN_SHOW_UNKNOWN_MODELS`` (default False): show entries of models that are gone to staff.

        Entries without a content type, or whose content type was deleted or
        names a model no longer installed, have no model whose view permission
        could decide who sees them: by default only superusers do. Set it to
        True to show them to everybody who may view the log.
        """
        return bool(getattr(settings, "AUDIT_LOG_ADMIN_SHOW_UNKNOWN_MODELS", False))

    @property
    def statement_timeout(self) -> float | None:
        """``AUDIT_LOG_ADMIN_STATEMENT_TIMEOUT`` (default 5): seconds a log query of the admin may run.

        PostgreSQL cancels a query of the log pages that runs longer, and the
        page says so instead of waiting (see ``audit_log_admin.limits``).
        ``None`` or ``0`` turns the limit off.

        Raises:
            ImproperlyConfigured: If the setting is not a number of seconds
                (or a ``timedelta``) of at least zero.
        """
        value = getattr(settings, "AUDIT_LOG_ADMIN_STATEMENT_TIMEOUT", DEFAULT_STATEMENT_TIMEOUT)
        if isinstance(value, datetime.timedelta):
            value = value.total_seconds()
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
            raise ImproperlyConfigured(
                f"AUDIT_LOG_ADMIN_STATEMENT_TIMEOUT = {value!r} must be a number of seconds (or None to turn it off)."
            )
        return float(value) or None

    @property
    def statement_timeout_ms(self) -> int | None:
        """``AUDIT_LOG_ADMIN_STATEMENT_TIMEOUT`` in whole milliseconds (at least 1), or None when off."""
        seconds = self.statement_timeout
        return max(1, math.ceil(seconds * 1000)) if seconds else None


conf = AuditLogAdminSettings()
