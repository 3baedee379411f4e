"""The History tab's time travel: "View as of here" and "Revert to before this change".

Two pages per ``ModelAdmin`` that uses ``AuditLogHistoryMixin`` (``urls``, called
by its ``get_urls``):

* ``<pk>/history/<entry id>/as-of/`` (``<app>_<model>_audit_as_of``): the object
  as the entry left it (:func:`audit_log.history.state_after`), rendered read-only
  in the ``ModelAdmin``'s own fieldsets, as Django renders a view-only change
  form, with what has changed since. Needs the view permission, as the History
  tab does; works for deleted objects too (the model's view permission).
* ``<pk>/history/<entry id>/revert/`` (``<app>_<model>_audit_revert``): a
  confirmation page listing what :func:`audit_log.history.revert` would change
  (:func:`audit_log.history.plan_revert`, which reads only); a POST with
  ``post=yes`` writes it. Needs the change permission on the object.

The core rebuilds and writes; this module only renders. The History tab and the
entry page link here through :class:`HistoryLinks` and :func:`entry_actions`
(in ``time_travel_display``), which check permissions once per page.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib import messages
from django.contrib.admin.utils import quote, unquote
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import formats
from django.utils.html import format_html
from django.utils.text import capfirst
from django.utils.translation import gettext as _

from audit_log import history
from audit_log.history_compare import compare
from audit_log.models import Action
from audit_log.routing import primary_database

from ..admin import entry_url
from ..diff import local_time
from ..fallbacks import PASSED_ON, history_object
from .time_travel_display import (
    StateDisplay,
    creates,
    difference_diff,
    entry_of,
    page_url,
    state_display,
    supports,
    unknown_notes,
)

if TYPE_CHECKING:
    from django.contrib.admin import ModelAdmin
    from django.db.models import Model
    from django.urls import URLPattern

    from audit_log.models import BaseLogEntry


def urls(model_admin: Any) -> list[URLPattern]:
    """Return the time-travel URL patterns of one ``ModelAdmin`` (placed before its own)."""
    opts = model_admin.opts
    wrap = model_admin.admin_site.admin_view  # login, staff, CSRF, never cached

    def as_of(request: HttpRequest, object_id: str, entry_id: int) -> HttpResponse:
        return as_of_view(model_admin, request, object_id, entry_id)

    def revert(request: HttpRequest, object_id: str, entry_id: int) -> HttpResponse:
        return revert_view(model_admin, request, object_id, entry_id)

    return [
        path(
            "<path:object_id>/history/<int:entry_id>/as-of/",
            wrap(as_of),
            name=f"{opts.app_label}_{opts.model_name}_audit_as_of",
        ),
        path(
            "<path:object_id>/history/<int:entry_id>/revert/",
            wrap(revert),
            name=f"{opts.app_label}_{opts.model_name}_audit_revert",
        ),
    ]


def _object_and_entry(
    model_admin: ModelAdmin[Any], request: HttpRequest, object_id: str, entry_id: int
) -> tuple[Model | None, Any, BaseLogEntry | None]:
    """Return the object (None if deleted), what to call it, and the entry if it is the object's.

    Raises:
        Http404: If the object exists but the user's queryset does not hold it
            (as Django answers a hidden object), or the id is no key of the model.
    """
    obj, shown = history_object(model_admin, request, object_id)
    opts = model_admin.opts
    try:
        pk = opts.pk.to_python(unquote(object_id)) if obj is None else obj.pk
    except PASSED_ON:
        raise
    except Exception as error:  # no key of this model: no such object
        raise Http404(_("No such object.")) from error
    if obj is None and model_admin.model._base_manager.filter(pk=pk).exists():
        raise Http404(_("No such object."))  # it exists, but not for this user
    return obj, shown, entry_of(model_admin.model, pk, entry_id)


def _page_context(
    model_admin: ModelAdmin[Any], request: HttpRequest, obj: Model | None, shown: Any, title: str
) -> dict[str, Any]:
    """Return what every time-travel page shows: the admin's context, the object and its pages."""
    opts = model_admin.opts
    site = model_admin.admin_site
    context: dict[str, Any] = {
        **site.each_context(request),
        "title": title,
        "subtitle": None,
        "opts": opts,
        "module_name": str(capfirst(opts.verbose_name_plural)),
        "object": shown,
        "exists": obj is not None,
        "change_url": "",
        "history_url": "",
    }
    if obj is not None:
        args = (quote(obj.pk),)
        context["change_url"] = reverse(f"{site.name}:{opts.app_label}_{opts.model_name}_change", args=args)
        context["history_url"] = reverse(f"{site.name}:{opts.app_label}_{opts.model_name}_history", args=args)
    request.current_app = site.name
    return context


def as_of_view(model_admin: ModelAdmin[Any], request: HttpRequest, object_id: str, entry_id: int) -> HttpResponse:
    """Show the object as ``entry_id`` left it, read-only in the admin's fieldsets, and what changed since."""
    obj, shown, entry = _object_and_entry(model_admin, request, object_id, entry_id)
    if not model_admin.has_view_or_change_permission(request, obj):
        raise PermissionDenied
    if entry is None:
        raise Http404(_("This object has no such log entry."))
    formatter = model_admin.get_audit_log_formatter(request)  # type: ignore[attr-defined]  # AuditLogHistoryMixin
    deleting = entry.action == Action.DELETE and entry.table_name == model_admin.opts.db_table
    error, state = "", None
    try:
        # After its DELETE an object is gone: show it as the deletion found it.
        state = history.state_before(entry) if deleting else history.state_after(entry)
    except history.HistoryError as failure:
        error = str(failure)
    display: StateDisplay | None = None
    if state is not None:
        display = state_display(model_admin, request, formatter, state)
    elif not error:
        error = _("The object did not exist after this change.")
    # The History tab links a row (a save and the links it changed) by its newest entry, which may
    # be a link's: the page still names the save, as the row does.
    entry = _row_entry(entry, model_admin.opts.db_table)
    when = formats.date_format(local_time(entry.at), "DATETIME_FORMAT")
    shown = shown if shown is not None else (display.label if display else entry.object_id)
    context = _page_context(
        model_admin, request, obj, shown, _("%(object)s as of %(when)s") % {"object": shown, "when": when}
    )
    diff, diff_error = None, ""
    if state is not None and obj is not None:
        try:
            diff = difference_diff(formatter, compare(state, key=obj.pk), since=True)
        except history.HistoryError as failure:
            diff_error = str(failure)
    revert_url = ""
    may_change = obj is not None and supports(model_admin.model) and model_admin.has_change_permission(request, obj)
    if obj is not None and may_change and not creates(entry, model_admin.model):
        revert_url = page_url(model_admin.admin_site, model_admin.model, "audit_revert", obj.pk, entry.pk)
    context.update(
        {
            "entry": entry,
            "entry_url": entry_url(request, model_admin.admin_site, entry),
            "who": formatter.format_user(entry),
            "deleting": deleting,
            "state": display,
            "error": error,
            "diff": diff,
            "diff_error": diff_error,
            "revert_url": revert_url,
        }
    )
    return TemplateResponse(request, "audit_log_admin/time_travel/as_of.html", context)


def _row_entry(entry: BaseLogEntry, table: str) -> BaseLogEntry:
    """Return the object's own entry of the transaction that wrote a link entry (else ``entry``).

    One query, only for a link entry: the newest entry of the object's own
    table in the same transaction, at or before it.
    """
    if entry.table_name == table or entry.transaction_id is None:
        return entry
    own = (
        type(entry)
        ._default_manager.using(entry._state.db)
        .filter(
            content_type_id=entry.content_type_id,
            object_id=entry.object_id,
            transaction_id=entry.transaction_id,
            table_name=table,
            id__lt=entry.pk,
        )
        .select_related("performed_by", "content_type")
        .order_by("-id")
        .first()
    )
    return own if own is not None else entry


class RevertForm(forms.Form):
    """The confirmation: ``post=yes``; refusals are shown as its non-field errors."""

    post = forms.CharField(widget=forms.HiddenInput, initial="yes")


def revert_view(model_admin: ModelAdmin[Any], request: HttpRequest, object_id: str, entry_id: int) -> HttpResponse:
    """Confirm (GET) and run (POST with ``post=yes``) a revert of the object to before ``entry_id``."""
    obj, shown = history_object(model_admin, request, object_id)
    if obj is None:
        return model_admin._get_obj_does_not_exist_redirect(request, model_admin.opts, object_id)  # type: ignore[attr-defined]  # private in django-stubs
    if not model_admin.has_change_permission(request, obj):
        raise PermissionDenied
    # From the primary, GET too: the page shows what the revert would write, and a replica may lag.
    entry = entry_of(model_admin.model, obj.pk, entry_id, using=primary_database(model_admin.model, obj))
    if entry is None:
        raise Http404(_("This object has no such log entry."))
    formatter = model_admin.get_audit_log_formatter(request)  # type: ignore[attr-defined]  # AuditLogHistoryMixin
    # Bound on GET too, so that a refusal can be added as a non-field error either way.
    form = RevertForm(request.POST if request.method == "POST" else {"post": "yes"})
    if form.is_valid() and request.method == "POST" and form.cleaned_data["post"] == "yes":
        try:
            result = history.revert(entry, obj=obj, performed_by=request.user, context={"path": request.path})
        except history.HistoryError as failure:  # RevertConflict too: nothing was written
            form.add_error(None, str(failure))
        else:
            return _reverted(model_admin, request, obj, shown, result)
    difference = None
    try:
        difference = history.plan_revert(entry, obj=obj)
    except history.HistoryError as failure:
        if not form.non_field_errors():
            form.add_error(None, str(failure))
    when = formats.date_format(local_time(entry.at), "DATETIME_FORMAT")
    title = _("Revert %(object)s to before the change of %(when)s") % {"object": shown, "when": when}
    context = _page_context(model_admin, request, obj, shown, title)
    context.update(
        {
            "entry": entry,
            "entry_url": entry_url(request, model_admin.admin_site, entry),
            "who": formatter.format_user(entry),
            "form": form,
            "difference": difference,
            "diff": difference_diff(formatter, difference, since=False) if difference else None,
            "kept": unknown_notes(formatter, model_admin.model, difference.kept_columns)
            if difference is not None
            else [],
            "skipped": difference.skipped_columns if difference is not None else (),
            "as_of_url": page_url(model_admin.admin_site, model_admin.model, "audit_as_of", obj.pk, entry.pk),
        }
    )
    return TemplateResponse(request, "audit_log_admin/time_travel/revert.html", context)


def _reverted(
    model_admin: ModelAdmin[Any], request: HttpRequest, obj: Model, shown: Any, result: history.Reverted
) -> HttpResponse:
    """Say what the revert wrote, and go to its log entry (the History tab if the user may not see the log)."""
    site = model_admin.admin_site
    opts = model_admin.opts
    history_page = reverse(f"{site.name}:{opts.app_label}_{opts.model_name}_history", args=(quote(result.pk),))
    written = list(result.entries())
    if not written:
        messages.info(request, _("Nothing differed from the state before that change: nothing was written."))
        return HttpResponseRedirect(history_page)
    new_entry = next((e for e in written if e.pk == result.entry_id), written[-1])
    url = entry_url(request, site, new_entry)
    if url:
        message = format_html(
            _('{object} was reverted. <a href="{url}">See the new log entry.</a>'), object=str(shown), url=url
        )
    else:
        message = format_html(_("{object} was reverted."), object=str(shown))
    messages.success(request, message)
    return HttpResponseRedirect(url or history_page)
