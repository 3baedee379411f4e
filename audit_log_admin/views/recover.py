"""Recover deleted objects: the list of an audited model's DELETE entries, a preview, and Restore.

Filled in by the recover admin work (issue 9). ``urls`` is called by
``AuditLogHistoryMixin.get_urls``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from django.urls import URLPattern


def urls(model_admin: Any) -> list[URLPattern]:
    """Return the recover URL patterns of one ``ModelAdmin`` (placed before its own)."""
    return []
