"""Recover deleted objects: the list of an audited model's DELETE entries, a preview, and Restore.

Like django-reversion's "Recover deleted ...", for every ``ModelAdmin`` using
``AuditLogHistoryMixin`` whose model is audited (and has a table of its own:
the history does not rebuild multi-table-inheritance children):

* ``recover/`` (``<app>_<model>_audit_recover``): the objects deleted and still
  gone, newest deletion first, paged by entry id (no count; ``PER_PAGE`` a page,
  or the ``ModelAdmin``'s ``audit_log_recover_per_page``), filterable by who
  deleted them and when. Viewing needs the model's view permission (which is
  also what lets the log show its entries).
* ``recover/<entry id>/`` (``<app>_<model>_audit_recover_preview``): the
  object's last state (:func:`audit_log.history.state_before` of its DELETE
  entry) in the model admin's own fieldsets and widgets, all disabled, and a
  "Restore" button for users with the add permission. Restoring runs
  :func:`audit_log.history.restore`; a conflict is shown as a form error and
  nothing is written.

The changelist link ("Recover deleted invoices") comes from
:func:`changelist_context` and the template :func:`changelist_template` adds.
Building the preview's form is in :mod:`audit_log_admin.views.snapshot`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib import messages
from django.contrib.admin.utils import quote
from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import PermissionDenied
from django.db import DatabaseError, connections, router
from django.db.models import Model, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.functional import Promise
from django.utils.html import format_html
from django.utils.text import Truncator, capfirst
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django_filters.fields import DateTimeRangeField

from audit_log import history
from audit_log.loading import get_log_entry_model
from audit_log.models import Action
from audit_log.routing import log_read_database, primary_database
from audit_log.sql import MASKED_VALUE, bare_name
from audit_log.triggers import column_of, is_audited

from ..admin import entry_url
from ..diff import DisplayValue
from ..fallbacks import PASSED_ON
from ..filters import DateTimeRangeWidget, bounded_by_id
from ..limits import LogQueryTimeout, report_timeout, statement_timeout
from ..pagination import KeysetPage, keyset_page
from ..permissions import log_visibility
from . import snapshot

if TYPE_CHECKING:
    from django.contrib.admin import ModelAdmin
    from django.urls import URLPattern

    from audit_log.models import BaseLogEntry

#: Deleted objects a page lists, unless the ``ModelAdmin`` sets ``audit_log_recover_per_page``.
PER_PAGE = 50
#: The longest object label a list row shows.
LABEL_LENGTH = 100


def recoverable(model: type[Model]) -> bool:
    """Return True if deleted objects of ``model`` can be listed and restored from the log.

    The model must be audited and keep its row in one table of its own: a
    multi-table-inheritance child's state spans several tables, which the
    history does not rebuild.
    """
    concrete = model._meta.concrete_model or model
    return is_audited(concrete) and not concrete._meta.parents


def url_name(model: type[Model], page: str = "") -> str:
    """Return the URL name of a recover page of ``model`` (``page``: "" for the list, "preview")."""
    opts = model._meta
    return f"{opts.app_label}_{opts.model_name}_audit_recover" + (f"_{page}" if page else "")


def urls(model_admin: ModelAdmin[Any]) -> list[URLPattern]:
    """Return the recover URL patterns of one ``ModelAdmin`` (placed before its own)."""
    model = model_admin.model
    if not recoverable(model):
        return []

    def wrap(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            return view(model_admin, request, *args, **kwargs)

        # admin_view: login, staff check, CSRF and no caching, as for the ModelAdmin's own pages.
        return model_admin.admin_site.admin_view(wrapper)

    return [
        path("recover/", wrap(recover_list_view), name=url_name(model)),
        path("recover/<int:entry_id>/", wrap(recover_preview_view), name=url_name(model, "preview")),
    ]


def recover_url(model_admin: ModelAdmin[Any], page: str = "", *args: Any) -> str:
    """Return the URL of a recover page of ``model_admin``'s model."""
    site = model_admin.admin_site
    return reverse(f"{site.name}:{url_name(model_admin.model, page)}", args=args, current_app=site.name)


def may_recover(model_admin: ModelAdmin[Any], request: HttpRequest) -> bool:
    """Return True if the user may list the model's deleted objects: view permission, and its log is visible."""
    model = model_admin.model._meta.concrete_model or model_admin.model
    if not recoverable(model) or not model_admin.has_view_permission(request):
        return False
    return log_visibility(request, model_admin.admin_site).shows_model(model)


# --- the changelist link ---------------------------------------------------------------------------


def changelist_context(model_admin: ModelAdmin[Any], request: HttpRequest) -> dict[str, Any]:
    """Return what the changelist's "Recover deleted ..." link needs (nothing if the user may not follow it)."""
    if not may_recover(model_admin, request):
        return {}
    return {
        "audit_log_recover_url": recover_url(model_admin),
        "audit_log_recover_label": _("Recover deleted %(name)s") % {"name": model_admin.opts.verbose_name_plural},
    }


def changelist_template(model_admin: ModelAdmin[Any], response: HttpResponse) -> HttpResponse:
    """Render the changelist with the link, unless the ``ModelAdmin`` names its own template.

    Django looks for ``admin/<app>/<model>/change_list.html`` and
    ``admin/<app>/change_list.html`` before ``admin/change_list.html``; a
    project's own file there still wins (extend
    ``audit_log_admin/change_list.html`` to keep the link).
    """
    if model_admin.change_list_template or not isinstance(response, TemplateResponse) or response.is_rendered:
        return response
    opts = model_admin.opts
    response.template_name = [
        f"admin/{opts.app_label}/{opts.model_name}/change_list.html",
        f"admin/{opts.app_label}/change_list.html",
        "audit_log_admin/change_list.html",
    ]
    return response


# --- the list ----------------------------------------------------------------------------------------


class DeletedFilterForm(forms.Form):
    """Who deleted, and when: the parameters are the log changelist's (``user``, ``at_after``, ``at_before``)."""

    user = forms.CharField(
        required=False,
        label=gettext_lazy("Deleted by"),
        help_text=gettext_lazy("A username. Users deleted since match their name at the time."),
    )
    at = DateTimeRangeField(
        required=False,
        label=gettext_lazy("Deleted"),
        widget=DateTimeRangeWidget,
        help_text=gettext_lazy("From, to (both included)."),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("auto_id", "audit-log-recover-%s")
        super().__init__(*args, **kwargs)

    def clean_at(self) -> slice | None:
        """Refuse a range that ends before it starts."""
        value: slice | None = self.cleaned_data.get("at")
        if value is not None and value.start and value.stop and value.start > value.stop:
            raise forms.ValidationError(_("The end is before the start."))
        return value

    def filter(self, entries: QuerySet[Any]) -> QuerySet[Any]:
        """Return the entries that match the (valid) form: one query more per filter used."""
        username = self.cleaned_data.get("user")
        if username:
            user_model = get_user_model()
            users = list(
                user_model._default_manager.using(entries.db)
                .filter(**{user_model.USERNAME_FIELD: username})
                .values_list("pk", flat=True)[:2]
            )
            # By id (the foreign key's index) while the user exists, else by the name recorded then.
            if users:
                entries = entries.filter(performed_by_id__in=users)
            else:
                entries = entries.filter(performed_by_label=username)
        span: slice | None = self.cleaned_data.get("at")
        lookups = {}
        if span is not None and span.start is not None:
            lookups["at__gte"] = span.start
        if span is not None and span.stop is not None:
            lookups["at__lte"] = span.stop
        return bounded_by_id(entries, **lookups) if lookups else entries


@dataclass(frozen=True)
class DeletedRow:
    """One deleted object of the list.

    Attributes:
        entry: Its DELETE entry.
        label: What it was called (its ``str()`` rebuilt from the entry, or model and key).
        who: Who deleted it.
        context: Where it was deleted, in one line.
        preview_url: Its preview page.
        entry_url: The DELETE entry's page in the log, or "" if the user may not see it.
    """

    entry: BaseLogEntry
    label: str
    who: DisplayValue
    context: str
    preview_url: str
    entry_url: str


def deleted_entries(model: type[Model], *, using: str | None = None) -> QuerySet[Any]:
    """Return the DELETE entries of ``model``'s own rows (any order), with the user joined.

    Read from ``using``; default: the log's read database (``audit_log.routing``).
    """
    entry_model = get_log_entry_model()
    using = using or log_read_database()
    content_type = ContentType.objects.db_manager(using).get_for_model(model)
    return (
        entry_model._default_manager.using(using)
        .filter(content_type_id=content_type.pk, table_name=model._meta.db_table, action=Action.DELETE)
        .select_related("performed_by")
    )


def still_deleted(model: type[Model], entries: list[BaseLogEntry]) -> list[BaseLogEntry]:
    """Return the entries whose object is still gone, each object once (its newest deletion): one query.

    An object restored since, or whose key a new row has taken, is left out.
    A key the primary key cannot read names no row, so it stays.
    """
    pk = model._meta.pk
    assert pk is not None  # composite keys are refused by audit_log.E008
    keys: dict[str, Any] = {}
    for entry in entries:
        try:
            keys[entry.object_id] = pk.to_python(entry.object_id)
        except (ValueError, TypeError, forms.ValidationError):
            keys[entry.object_id] = None
    wanted = [key for key in keys.values() if key is not None]
    existing = set(
        model._base_manager.using(router.db_for_read(model)).filter(pk__in=wanted).values_list("pk", flat=True)
        if wanted
        else ()
    )
    seen: set[str] = set()
    kept = []
    for entry in entries:
        key = keys[entry.object_id]
        if entry.object_id in seen or (key is not None and key in existing):
            continue
        seen.add(entry.object_id)
        kept.append(entry)
    return kept


class _QueryBlocked(Exception):  # noqa: N818  # raised into a __str__, caught right away
    """A label's ``__str__`` tried to query the database."""


def _block_queries(*args: Any) -> Any:
    raise _QueryBlocked


def entry_label(model: type[Model], entry: BaseLogEntry) -> str:
    """Return what a deleted object was called: ``str()`` of an instance built from its DELETE entry.

    No query: the values are converted by the fields in Python (masked ones
    and those that do not convert are left out), and a ``__str__`` that needs
    the database (a related object, a deferred field) or fails gets the model
    and key instead.
    """
    fallback = f"{capfirst(model._meta.verbose_name)} {entry.object_id}"
    changes = entry.changes
    if not isinstance(changes, dict):
        return fallback
    values: dict[str, Any] = {}
    for model_field in model._meta.concrete_fields:
        raw = changes.get(bare_name(column_of(model_field))) if model_field.column else None
        if raw is None or raw == MASKED_VALUE:
            continue
        converter = model_field.target_field if model_field.is_relation else model_field  # type: ignore[attr-defined]  # ForeignKey only
        try:
            values[model_field.attname] = converter.to_python(raw)
        except Exception:  # noqa: BLE001, S112  # any field's to_python on logged data: leave the value out
            continue
    connection = connections[entry._state.db or router.db_for_read(model)]
    try:
        with connection.execute_wrapper(_block_queries):
            text = str(model(**values))
    except Exception:  # noqa: BLE001  # a __str__ that queries or fails on odd data must not break the list
        return fallback
    return Truncator(text).chars(LABEL_LENGTH) or fallback


def recover_list_view(model_admin: ModelAdmin[Any], request: HttpRequest) -> HttpResponse:
    """List the model's deleted objects, newest deletion first (see the module docstring).

    Queries: the page of entries (``per_page + 1``, user joined; one ``EXISTS``
    more on a page reached through a cursor), one for which of its keys exist
    again, and one per filter used, whatever the log's size. The log queries
    run under the admin's statement timeout.
    """
    if not may_recover(model_admin, request):
        raise PermissionDenied
    model = model_admin.model._meta.concrete_model or model_admin.model
    form = DeletedFilterForm(request.GET)
    entries = deleted_entries(model)
    per_page = int(getattr(model_admin, "audit_log_recover_per_page", PER_PAGE))
    page, rows = KeysetPage(), []
    if form.is_valid():
        try:
            with statement_timeout(entries.db):
                page = keyset_page(form.filter(entries), request, per_page)
                shown = still_deleted(model, list(page.items))
        except LogQueryTimeout:
            report_timeout(request)
            page, shown = KeysetPage(), []
        formatter = model_admin.get_audit_log_formatter(request)  # type: ignore[attr-defined]  # AuditLogHistoryMixin
        rows = [
            DeletedRow(
                entry=entry,
                label=entry_label(model, entry),
                who=formatter.format_user(entry),
                context=formatter.format_context(entry),
                preview_url=recover_url(model_admin, "preview", entry.pk),
                entry_url=entry_url(request, model_admin.admin_site, entry),
            )
            for entry in shown
        ]
    opts = model_admin.opts
    context = {
        **model_admin.admin_site.each_context(request),
        "title": _("Recover deleted %(name)s") % {"name": opts.verbose_name_plural},
        "subtitle": None,
        "opts": opts,
        "module_name": str(capfirst(opts.verbose_name_plural)),
        "has_view_permission": True,
        "may_restore": model_admin.has_add_permission(request),
        "form": form,
        "filtered": any(request.GET.get(name) for name in ("user", "at_after", "at_before")),
        "rows": rows,
        "hidden_count": len(page.items) - len(rows),
        "page": page,
    }
    request.current_app = model_admin.admin_site.name
    return TemplateResponse(request, "audit_log_admin/recover/list.html", context)


# --- the preview and Restore ------------------------------------------------------------------------


class RestoreForm(forms.Form):
    """The Restore button: ``post=yes`` (as Django's delete confirmation); conflicts become its errors."""

    post = forms.CharField(widget=forms.HiddenInput, initial="yes")

    def clean_post(self) -> str:
        """Accept only the button's own value."""
        value: str = self.cleaned_data["post"]
        if value != "yes":
            raise forms.ValidationError(_("Use the Restore button."))
        return value


def _problem(error: Exception) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def recover_preview_view(model_admin: ModelAdmin[Any], request: HttpRequest, entry_id: int) -> HttpResponse:
    """Show a deleted object's last state read-only; on POST (add permission), restore it.

    Raises:
        PermissionDenied: Without view permission, or a POST without add permission.
        Http404: If ``entry_id`` is no DELETE entry of this model's own rows.
    """
    if not may_recover(model_admin, request):
        raise PermissionDenied
    model = model_admin.model._meta.concrete_model or model_admin.model
    # A Restore reads its entry (and, in restore(), the state) from the primary: a replica may lag.
    using = primary_database(model) if request.method == "POST" else None
    entry = deleted_entries(model, using=using).filter(pk=entry_id).first()
    if entry is None:
        raise Http404(_("No deletion of %(name)s with this id.") % {"name": model._meta.verbose_name})
    may_restore = model_admin.has_add_permission(request)
    form = RestoreForm(request.POST if request.method == "POST" else None)
    if request.method == "POST":
        if not may_restore:
            raise PermissionDenied
        if form.is_valid():
            try:
                with snapshot.savepoint(entry._state.db or "default"):
                    restored = history.restore(entry, model=model, performed_by=request.user)
            except history.HistoryError as error:  # RevertConflict too: nothing was written
                form.add_error(None, str(error))
            except PASSED_ON:
                raise
            except (DatabaseError, ValueError, TypeError, ArithmeticError) as error:
                # Log data the restore cannot read (changes that are no row ...): refused, not a 500.
                form.add_error(None, _("This object cannot be restored from the log: %s") % _problem(error))
            else:
                return _restored(model_admin, request, restored)
    return _render_preview(model_admin, request, entry, form, may_restore)


def _restored(model_admin: ModelAdmin[Any], request: HttpRequest, restored: history.Reverted) -> HttpResponse:
    """Say what was restored (linking its new entry) and go to the object's change page."""
    opts = model_admin.opts
    try:
        shown = str(restored.instance)
    except Exception:  # noqa: BLE001  # the row is written: a failing __str__ must not turn that into an error page
        shown = f"{capfirst(opts.verbose_name)} {restored.pk}"
    names = {"name": opts.verbose_name, "obj": shown}
    message = format_html(_("The {name} “{obj}” was restored."), **names)
    new_entry = (
        get_log_entry_model()._default_manager.using(restored.using).filter(pk=restored.entry_id).first()
        if restored.entry_id is not None
        else None
    )
    url = entry_url(request, model_admin.admin_site, new_entry) if new_entry is not None else ""
    if url:
        message = format_html('{} <a href="{}">{}</a>', message, url, _("Its log entry"))
    messages.success(request, message)
    site = model_admin.admin_site
    change = reverse(
        f"{site.name}:{opts.app_label}_{opts.model_name}_change", args=(quote(restored.pk),), current_app=site.name
    )
    return HttpResponseRedirect(change)


def _render_preview(
    model_admin: ModelAdmin[Any], request: HttpRequest, entry: BaseLogEntry, form: RestoreForm, may_restore: bool
) -> HttpResponse:
    model = model_admin.model._meta.concrete_model or model_admin.model
    formatter = model_admin.get_audit_log_formatter(request)  # type: ignore[attr-defined]  # AuditLogHistoryMixin
    label = entry_label(model, entry)
    problem: str | Promise = ""
    state: history.AuditState | None = None
    try:
        with snapshot.savepoint(entry._state.db or "default"):
            state = history.state_before(entry, model=model)
    except PASSED_ON:
        raise
    except (history.HistoryError, DatabaseError, ValueError, TypeError, ArithmeticError) as error:
        problem = _("Its last state cannot be rebuilt from the log: %s") % _problem(error)
    if state is None and not problem:
        problem = _("The log records no row for this deletion.")
    shown = snapshot.render(model_admin, request, state) if state is not None else snapshot.Rendered()
    if state is not None and not shown.html and not problem:
        problem = shown.problem
    diff = None
    if not shown.html:
        # Whatever went wrong, the entry's own record of the row can still be shown.
        formatter.prefetch([entry])
        diff = formatter.format_entry(entry)
    opts = model_admin.opts
    context = {
        **model_admin.admin_site.each_context(request),
        "title": _("Recover deleted %(name)s") % {"name": opts.verbose_name},
        "subtitle": label,
        "opts": opts,
        "has_view_permission": True,
        "entry": entry,
        "label": label,
        "who": formatter.format_user(entry),
        "where": formatter.format_context(entry),
        "entry_url": entry_url(request, model_admin.admin_site, entry),
        "list_url": recover_url(model_admin),
        "fieldsets_html": shown.html,
        "notes": shown.notes,
        "problem": problem,
        "diff": diff,
        "media": shown.media,
        "may_restore": may_restore,
        "form": form,
    }
    request.current_app = model_admin.admin_site.name
    return TemplateResponse(request, "audit_log_admin/recover/preview.html", context)
