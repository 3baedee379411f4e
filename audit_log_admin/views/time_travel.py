"""The History tab's time travel: "View as of here" and "Revert to before this change".

Filled in by the time-travel admin work (issue 9). ``urls`` is called by
``AuditLogHistoryMixin.get_urls``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from django.urls import URLPattern


def urls(model_admin: Any) -> list[URLPattern]:
    """Return the time-travel URL patterns of one ``ModelAdmin`` (placed before its own)."""
    return []
