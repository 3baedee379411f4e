"""The ``AUDIT_LOG_ADMIN_*`` settings, read on every access so ``override_settings`` works."""

from __future__ import annotations

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


conf = AuditLogAdminSettings()
