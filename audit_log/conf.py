"""The ``AUDIT_LOG_*`` settings, read on every access so ``override_settings`` works."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.conf import settings

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


conf = AuditLogSettings()
