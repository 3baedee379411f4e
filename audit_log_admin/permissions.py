"""Who sees which log entries in the admin: the entries of the models they may view.

An entry belongs to the model of its content type. A user sees it if they may
view that model on the same admin site: the ``has_view_permission(request)`` of
the model's registered ``ModelAdmin``, or, for a model without one, the
``<app_label>.view_<model>`` (or ``change_<model>``) permission, which is what
Django's ``ModelAdmin.has_view_permission`` reads. Entries whose model is gone
(no content type, a deleted content type, or one naming a model no longer
installed) are shown to superusers only, unless
``AUDIT_LOG_ADMIN_SHOW_UNKNOWN_MODELS`` is True. Superusers see everything.

Every log page (changelist, count, entry page, the lists on it, filter choices,
history links) goes through :func:`log_visibility`, computed once per request
and admin site from Django's content-type cache and the user's cached
permissions: it adds no query.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.apps import apps
from django.contrib import admin
from django.contrib.auth import get_permission_codename
from django.contrib.contenttypes.models import ContentType, ContentTypeManager
from django.db import router
from django.db.models import Model, QuerySet
from django.http import HttpRequest

from audit_log.loading import get_log_entry_model

from .conf import conf

#: Where a request keeps its visibility, per admin site name (computed once per request).
_CACHE_ATTRIBUTE = "_audit_log_admin_visibility"


@dataclass(frozen=True)
class LogVisibility:
    """Which content types' entries one request may see.

    It takes one of three forms:

    * nothing hidden (a superuser): no filter at all;
    * ``shown``: only these content type ids (entries of unknown models are
      hidden, the default);
    * ``hidden``: every content type id but these, NULL included (with
      ``AUDIT_LOG_ADMIN_SHOW_UNKNOWN_MODELS``).

    Attributes:
        hidden: Content type ids whose entries are left out.
        shown: The only content type ids whose entries are shown, or None.
    """

    hidden: frozenset[int] = frozenset()
    shown: frozenset[int] | None = None

    @property
    def everything(self) -> bool:
        """True if nothing is hidden (a superuser's view)."""
        return self.shown is None and not self.hidden

    def shows(self, content_type_id: int | None) -> bool:
        """Return True if entries with this content type id are visible."""
        if self.shown is not None:
            return content_type_id in self.shown
        return content_type_id not in self.hidden

    def shows_model(self, model: type[Model]) -> bool:
        """Return True if entries of ``model``'s table are visible (its content type comes from Django's cache)."""
        return self.everything or self.shows(_content_types().get_for_model(model).pk)

    def apply(self, queryset: QuerySet[Any]) -> QuerySet[Any]:
        """Return the log entries of ``queryset`` that are visible."""
        if self.shown is not None:
            return queryset.filter(content_type_id__in=sorted(self.shown))
        if self.hidden:
            queryset = queryset.exclude(content_type_id__in=sorted(self.hidden))
        return queryset


def may_view_model(request: HttpRequest, admin_site: admin.AdminSite, model: type[Model]) -> bool:
    """Return True if the request's user may view ``model`` on ``admin_site``.

    A registered ``ModelAdmin`` decides (``has_view_permission(request)``);
    otherwise the view or change permission, as Django's default
    ``has_view_permission`` reads them.
    """
    if admin_site.is_registered(model):
        return admin_site.get_model_admin(model).has_view_permission(request)
    opts = model._meta
    return any(
        request.user.has_perm(f"{opts.app_label}.{get_permission_codename(action, opts)}")
        for action in ("view", "change")
    )


def compute_visibility(request: HttpRequest, admin_site: admin.AdminSite) -> LogVisibility:
    """Work out which entries the request's user may see on ``admin_site`` (see the module docstring).

    Every installed model is checked, audited or not: a model audited once
    keeps its entries after its triggers are removed.
    """
    user = getattr(request, "user", None)
    if user is None or not user.is_active:
        return LogVisibility(shown=frozenset())
    if user.is_superuser:
        return LogVisibility()
    shown: set[int] = set()
    hidden: set[int] = set()
    for model, content_type in _content_types().get_for_models(*apps.get_models(), for_concrete_models=False).items():
        (shown if may_view_model(request, admin_site, model) else hidden).add(content_type.pk)
    if conf.show_unknown_models:
        # Unknown ids are shown, so only the hidden ones can be listed.
        return LogVisibility(hidden=frozenset(hidden))
    # List the visible ids. Leaving out the hidden ones instead (with every
    # unknown id) measured the same when little is hidden, and 3-6 times
    # slower when the hidden models hold most of the log (a staff user who
    # may not see the busiest table): the scan then reads past their entries.
    return LogVisibility(shown=frozenset(shown))


def log_visibility(request: HttpRequest, admin_site: admin.AdminSite) -> LogVisibility:
    """Return which entries the request's user may see on ``admin_site``, computed once per request."""
    cache: dict[str, LogVisibility] = request.__dict__.setdefault(_CACHE_ATTRIBUTE, {})
    if admin_site.name not in cache:
        cache[admin_site.name] = compute_visibility(request, admin_site)
    return cache[admin_site.name]


def _content_types() -> ContentTypeManager:
    """Return the content-type manager of the database the log is read from (the ids in the log are its)."""
    return ContentType.objects.db_manager(router.db_for_read(get_log_entry_model()))
