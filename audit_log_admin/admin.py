"""The admin: an audit-log history tab for any ``ModelAdmin`` and a read-only admin for the log itself.

``AuditLogHistoryMixin`` replaces an object's "History" page (Django's
``django_admin_log``) with its audit log::

    @admin.register(Invoice)
    class InvoiceAdmin(AuditLogHistoryMixin, admin.ModelAdmin):
        ...

``LogEntryAdmin`` is registered for the ``AUDIT_LOG_ENTRY_MODEL`` when the app
is ready, unless ``AUDIT_LOG_ADMIN_REGISTER = False`` (then register your own
subclass, or none). Entries can be viewed, never added, changed or deleted.
"""

from __future__ import annotations

import datetime
import uuid
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.contrib import admin
from django.contrib.admin import ShowFacets
from django.contrib.admin.utils import quote
from django.contrib.admin.views.main import ChangeList
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ImproperlyConfigured, PermissionDenied, ValidationError
from django.db.models import Case, F, Model, QuerySet, Value, When
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, QueryDict
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.dateformat import format as date_format
from django.utils.html import format_html
from django.utils.text import capfirst
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from audit_log.loading import get_log_entry_model
from audit_log.models import Action, BaseLogEntry
from audit_log.routing import for_display, log_primary_database, log_read_database
from audit_log.seal import last_seal
from audit_log.triggers import is_audited

from .conf import conf
from .context_display import ContextRow, context_rows
from .diff import DiffFormatter, DisplayValue, FormattedDiff, local_time, one_line
from .fallbacks import history_object
from .filters import FilterSetListFilter, LogEntryFilterSet, bounded_by_id, url_without_empty_filters
from .limits import LogQueryTimeout, bound_search, drop_invalid_dates, report_timeout, statement_timeout
from .links import group_entries
from .object_labels import deleted_row, label_object
from .pagination import EstimatedCountPaginator, KeysetPage, capped_count, keyset_page
from .permissions import log_visibility
from .views.time_travel_display import HistoryLinks, entry_actions

if TYPE_CHECKING:
    _ModelAdminBase = admin.ModelAdmin[Any]
else:
    _ModelAdminBase = object


@dataclass(frozen=True)
class EntryDisplay:
    """One log entry with everything a page shows about it.

    Attributes:
        entry: The log entry.
        diff: Its formatted changes (empty rows on the changelist, which shows
            ``summary`` instead).
        who: Who made the change.
        context: A one-line summary of where the change came from.
        url: The entry's page in the log admin, or "" if the user may not see it.
        object: The logged object (only on pages that show it).
        model: The logged model's name.
        summary: A short summary of the changed fields.
        links: Entries of the object's many-to-many tables shown with
            ``entry`` (a History tab row: see ``audit_log_admin.links``).
        as_of_url: The row's "View as of here" page, or "".
        revert_url: The row's "Revert to before this change" page, or "".
    """

    entry: BaseLogEntry
    diff: FormattedDiff
    who: DisplayValue
    context: str
    url: str = ""
    object: DisplayValue | None = None
    model: str = ""
    summary: str = ""
    links: tuple[BaseLogEntry, ...] = ()
    as_of_url: str = ""
    revert_url: str = ""

    @property
    def action(self) -> str:
        """What the row did to the object: the diff's action (a row of links alone: UPDATE)."""
        return self.diff.action

    def get_action_display(self) -> str:
        """The action's label (Created, Changed, Deleted), as the entry's own method gives it."""
        return str(dict(Action.choices).get(self.action, self.action))


def entry_url(request: HttpRequest, admin_site: admin.AdminSite, entry: BaseLogEntry) -> str:
    """Return the entry's page in the log admin, or "" if it has none or the user may not view it."""
    model = type(entry)
    if not admin_site.is_registered(model):
        return ""
    if not admin_site.get_model_admin(model).has_view_permission(request, entry):
        return ""
    opts = model._meta
    return reverse(
        f"{admin_site.name}:{opts.app_label}_{opts.model_name}_change",
        args=(quote(entry.pk),),
        current_app=admin_site.name,
    )


def log_changelist_url(admin_site: admin.AdminSite, **params: Any) -> str:
    """Return the log changelist, filtered by ``params``; "" if the log has no admin on this site."""
    opts = get_log_entry_model()._meta
    try:
        url = reverse(f"{admin_site.name}:{opts.app_label}_{opts.model_name}_changelist", current_app=admin_site.name)
    except NoReverseMatch:
        return ""
    query = QueryDict(mutable=True)
    query.update({name: str(value) for name, value in params.items() if value is not None})
    return f"{url}?{query.urlencode()}" if query else url


class AuditLogHistoryMixin(_ModelAdminBase):
    """Make a ``ModelAdmin``'s "History" page show the object's audit log.

    Put it before ``admin.ModelAdmin`` in the bases. The page lists the
    object's entries newest first (those of its multi-table-inheritance parents
    too), ``audit_log_history_per_page`` at a time, each with when, what, who,
    where and the diff. The links of its many-to-many fields ("Tags: +
    light-roast, - single-origin") join the row of its own change in the same
    transaction, or make a row of their own. It is shown to users who may view
    or change the object, as Django's own history page is; a missing object
    redirects like Django does.

    Every page costs the same few queries however long the history: the
    object, a count capped at ``AUDIT_LOG_ADMIN_EXACT_COUNT_LIMIT``, one
    ``id``-range scan of the per-object index (user joined), and one query per
    model that the page's foreign keys and many-to-many links point to.

    Attributes:
        object_history_template: The page's template.
        audit_log_history_per_page: Entries per page.
    """

    object_history_template = "audit_log_admin/object_history.html"
    audit_log_history_per_page = 50

    def get_urls(self) -> list[Any]:
        """Add the time-travel and recover pages before the ``ModelAdmin``'s own (its catch-all comes last)."""
        from .views import recover, time_travel  # they import this module's helpers

        return [*time_travel.urls(self), *recover.urls(self), *super().get_urls()]

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        """Add "Recover deleted ..." to the object tools, for users who may view the model.

        The link needs ``audit_log_admin/change_list.html``, used only when
        the ``ModelAdmin`` names no ``change_list_template`` of its own (see
        :func:`audit_log_admin.views.recover.changelist_template`).
        """
        from .views import recover  # it imports this module's helpers

        context = {**recover.changelist_context(self, request), **(extra_context or {})}
        return recover.changelist_template(self, super().changelist_view(request, context))

    def get_audit_log_queryset(self, request: HttpRequest, obj: Model) -> QuerySet[Any]:
        """Return the object's log entries (any order; the page orders by id).

        Entries are found by content type and object id, which the per-object
        index covers. A multi-table-inheritance child's parents share its
        primary key value, so their tables' entries are the object's too.
        Read from ``AUDIT_LOG_READ_DATABASE`` when it is set (see
        ``audit_log.routing``): a replica may not show the newest change yet.
        """
        model = type(obj)._meta.concrete_model or type(obj)
        using = log_read_database(obj)
        content_types = ContentType.objects.db_manager(using).get_for_models(model, *model._meta.get_parent_list())
        ids = [content_type.pk for content_type in content_types.values()]
        entries = get_log_entry_model()._default_manager.using(using)
        if len(ids) == 1:
            entries = entries.filter(content_type_id=ids[0], object_id=str(obj.pk))
        else:
            entries = entries.filter(content_type_id__in=ids, object_id=str(obj.pk))
        return entries.select_related("performed_by", "content_type")

    def get_audit_log_formatter(self, request: HttpRequest) -> DiffFormatter:
        """Return the formatter of this request (``AUDIT_LOG_ADMIN_FORMATTER``)."""
        return conf.formatter_class(request=request, admin_site=self.admin_site)

    def history_view(
        self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        """Show the object's audit log instead of ``django_admin_log`` (also for an object that cannot be loaded)."""
        obj, shown = history_object(self, request, object_id)
        if obj is None:
            # Django's own answer for a missing object (a message and a redirect).
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)  # type: ignore[attr-defined]  # private in django-stubs
        if not self.has_view_or_change_permission(request, obj):
            raise PermissionDenied

        entries = self.get_audit_log_queryset(request, obj)
        limit = conf.exact_count_limit
        try:
            with statement_timeout(entries.db):
                count = capped_count(entries, limit)
                page = keyset_page(entries, request, self.audit_log_history_per_page)
        except LogQueryTimeout:
            report_timeout(request)
            count, page = 0, KeysetPage()
        formatter = self.get_audit_log_formatter(request)
        formatter.prefetch(page.items)
        travel = HistoryLinks.for_page(self, request, obj)  # permissions checked once per page
        # A save and the many-to-many links it changed in the same transaction read as one change.
        displays = [
            EntryDisplay(
                entry=group.entry,
                diff=formatter.format_entries(group.entries),
                who=formatter.format_user(group.entry),
                context=formatter.format_context(group.entry),
                url=entry_url(request, self.admin_site, group.entry),
                links=tuple(link for link in group.links if link is not group.entry),
                as_of_url=travel.as_of_url(group),
                revert_url=travel.revert_url(group),
            )
            for group in group_entries(page.items, formatter.is_link)
        ]
        content_type = ContentType.objects.get_for_model(obj)
        log_url = ""
        # The log's model filter offers audited models only, and only those the user may see there.
        if is_audited(type(obj)) and log_visibility(request, self.admin_site).shows(content_type.pk):
            log_url = log_changelist_url(self.admin_site, model=content_type.pk, object_id=obj.pk)
        context = {
            **self.admin_site.each_context(request),
            "title": _("Change history: %s") % shown,
            "subtitle": None,
            "object": shown,
            "opts": self.opts,
            "module_name": str(capfirst(self.opts.verbose_name_plural)),
            "preserved_filters": self.get_preserved_filters(request),
            "entries": displays,
            "page": page,
            "entry_count": min(count, limit),
            "entry_count_capped": count > limit,
            "log_url": log_url,
            **(extra_context or {}),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(
            request,
            self.object_history_template
            or [
                f"admin/{self.opts.app_label}/{self.opts.model_name}/object_history.html",
                f"admin/{self.opts.app_label}/object_history.html",
                "admin/object_history.html",
            ],
            context,
        )


class LogEntryChangeList(ChangeList):
    """The log's changelist: formats a whole page of entries at once.

    After the page is fetched, the formatter fetches the logged objects of all
    its entries (one query per logged model) and attaches an ``EntryDisplay``
    to each entry, which the ``list_display`` columns read.
    """

    def get_queryset(self, request: HttpRequest, exclude_parameters: Any = None) -> QuerySet[Any]:
        """Return the filtered entries; a date-hierarchy month or day is also bounded by id.

        See :func:`audit_log_admin.filters.bounded_by_id`. A whole year is left
        to Django: finding its bounds reads as many rows as the page query skips.
        Date-hierarchy values out of range are dropped first, with a message
        (:func:`~audit_log_admin.limits.drop_invalid_dates`); a query stopped by
        the statement timeout leaves an empty list and a message.
        """
        drop_invalid_dates(request, self)
        try:
            with statement_timeout(self.root_queryset.db):
                queryset = super().get_queryset(request, exclude_parameters)
                window = self.date_hierarchy_window()
                if window is None:
                    return queryset
                return bounded_by_id(
                    queryset, **{f"{self.date_hierarchy}__gte": window[0], f"{self.date_hierarchy}__lt": window[1]}
                )
        except LogQueryTimeout:
            self.log_timed_out(request)
            if self.clear_all_filters_qs is None:  # set after the filters and search, which the timeout cut short
                self.clear_all_filters_qs = self.get_query_string(remove=self.get_filters_params())
            return self.root_queryset.none()

    def log_timed_out(self, request: HttpRequest) -> None:
        """Say (once) that a log query ran into ``AUDIT_LOG_ADMIN_STATEMENT_TIMEOUT``."""
        if not getattr(self, "timed_out", False):
            self.timed_out = True
            report_timeout(request)

    def date_hierarchy_window(self) -> tuple[datetime.datetime, datetime.datetime] | None:
        """Return the month or day the date hierarchy selects, as the admin filters it; None otherwise."""
        if not self.date_hierarchy:
            return None
        name = self.date_hierarchy
        try:
            year, month = int(self.params[f"{name}__year"]), int(self.params[f"{name}__month"])
            day = int(self.params[f"{name}__day"]) if f"{name}__day" in self.params else None
            start = datetime.datetime(year, month, day or 1)
        except (KeyError, ValueError, OverflowError):
            return None  # no month selected (or a bad value, which Django reports)
        end = start + datetime.timedelta(days=1) if day else (start + datetime.timedelta(days=32)).replace(day=1)
        if settings.USE_TZ:
            start, end = timezone.make_aware(start), timezone.make_aware(end)
        return start, end

    def get_results(self, request: HttpRequest) -> None:
        """Fetch the page (an empty one if the statement timeout stops it), then prepare every entry's display."""
        try:
            with statement_timeout(self.queryset.db):
                super().get_results(request)
                entries = list(self.result_list)  # evaluates (and caches) the page the template iterates again
        except LogQueryTimeout:
            self.log_timed_out(request)
            self.queryset = self.queryset.none()
            super().get_results(request)  # counts and fetches nothing
            entries = []
        model_admin: LogEntryAdmin = self.model_admin  # type: ignore[assignment]  # typed as any ModelAdmin
        formatter = model_admin.get_audit_log_formatter(request)
        formatter.prefetch(entries, related=False, objects=True)
        for entry in entries:
            # Per-request display data, read by the list_display columns.
            entry.audit_log_admin = row_display(formatter, entry)


def row_display(formatter: DiffFormatter, entry: BaseLogEntry) -> EntryDisplay:
    """Return what a changelist row shows of ``entry`` (a summary, not the full diff)."""
    return EntryDisplay(
        entry=entry,
        diff=FormattedDiff(action=entry.action, rows=()),
        who=formatter.format_user(entry),
        context=formatter.format_context(entry),
        object=formatter.format_object(entry),
        model=formatter.format_model(entry),
        summary=formatter.summarize(entry),
    )


def _cut(content: str, title: str) -> str:
    """Wrap a changelist cell's content in a one-line box that ends in an ellipsis if cut, ``title`` on hover."""
    return format_html('<span class="audit-log-cut" title="{}">{}</span>', title, content)


def _link(value: DisplayValue) -> str:
    """Render a display value as escaped text, linked if it has a URL."""
    if value.url:
        return format_html('<a href="{}">{}</a>', value.url, value.text)
    return format_html('<span class="audit-log-value audit-log-{}">{}</span>', value.kind, value.text)


@dataclass
class EntryDetail:
    """What the entry page shows: the entry, its context, custom fields and links.

    Attributes:
        display: The entry, formatted, with its full diff.
        context_json: The context, pretty-printed.
        heading: The page's heading and breadcrumb: "Changed: Invoice INV-7".
        context_rows: The context as labelled rows (see ``context_display``).
        extra_fields: ``(label, value)`` of the entry model's own fields.
        links: ``(label, url)`` of related pages.
        same_transaction: ``(url, action, "Invoice INV-7")`` of the other
            entries of the transaction (the first ``same_transaction_limit``).
        more_in_transaction: True if the transaction has more entries than listed.
        context_note: Why the context is shown as stored, if it is.
        transaction_note: Why the other entries of the transaction are not listed, if they are not.
        actions: ``(label, url, css class)`` of the buttons the user may use: "View as of here",
            "Revert to before this change", "Restore" (see ``views.time_travel_display.entry_actions``).
    """

    display: EntryDisplay
    context_json: str
    heading: str = ""
    context_rows: tuple[ContextRow, ...] = ()
    extra_fields: list[tuple[str, str]] = field(default_factory=list)
    links: list[tuple[str, str]] = field(default_factory=list)
    same_transaction: list[tuple[str, str, str]] = field(default_factory=list)
    more_in_transaction: bool = False
    context_note: str = ""
    transaction_note: str = ""
    actions: list[tuple[str, str, str]] = field(default_factory=list)


class LogEntryAdmin(admin.ModelAdmin):  # ModelAdmin[Any] would fail at runtime (not subscriptable)
    """A read-only admin for the log entries.

    The changelist is built for a large log: newest first by id (no other
    sorting), a count that stops at ``AUDIT_LOG_ADMIN_EXACT_COUNT_LIMIT`` and
    estimates beyond it, user and content type joined, a date hierarchy that
    does not scan the table, and django-filter filters (``filterset_class``)
    in the sidebar. Each entry's page shows its full diff and context and
    links to the object, its history and the rest of its transaction.

    Nobody can add, change or delete entries here, superusers included;
    viewing needs the entry model's view (or change) permission.
    """

    list_display = ("when", "action_label", "model_label", "object_label", "who", "context_type_label", "summary")
    list_display_links = ("when",)
    list_filter = (FilterSetListFilter,)
    filterset_class: type[LogEntryFilterSet] = LogEntryFilterSet
    search_fields = ("=object_id", "context")
    search_max_words = 5
    search_max_entries: int | None = 100_000
    date_hierarchy = "at"
    ordering = ("-id",)
    sortable_by = ()  # any order but the primary key's means sorting the whole log
    list_select_related = ("performed_by", "content_type")
    list_per_page = 50
    show_full_result_count = False
    show_facets = ShowFacets.NEVER
    paginator = EstimatedCountPaginator
    actions = None
    change_list_template = "audit_log_admin/logentry/change_list.html"
    change_form_template = "audit_log_admin/logentry/change_form.html"
    same_transaction_limit = 20

    @property
    def search_help_text(self) -> str:  # type: ignore[override]  # a class attribute in Django; it tells our limits
        """Say what the search matches and how far it goes (``search_max_words``, ``search_max_entries``)."""
        text = _("Searches object ids (exact), request and command details, and context ids: up to %(words)d words.")
        text %= {"words": self.search_max_words}
        if self.search_max_entries is not None:
            narrow = _("Narrow a list of more than %(entries)s entries first (a date range, a model ...).")
            text += " " + narrow % {"entries": f"{self.search_max_entries:,}"}
        return text

    # -- permissions: read-only for everybody ----------------------------------

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Never: entries are written by the database triggers only."""
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Never: an audit log that can be edited proves nothing."""
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Never: retention is a database job, not an admin click."""
        return False

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Django's rule, and for an entry: the user may see its model's entries (see ``permissions``)."""
        if not super().has_view_permission(request, obj):
            return False
        return obj is None or log_visibility(request, self.admin_site).shows(obj.content_type_id)

    # -- queries ------------------------------------------------------------------

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        """Return the entries the user may see (see ``permissions``), with user and content type joined.

        Every page reads entries through here: the changelist and its count,
        the entry page (a hidden entry is missing) and its lists; from
        ``AUDIT_LOG_READ_DATABASE`` when it is set (see ``audit_log.routing``).
        """
        queryset = for_display(super().get_queryset(request)).select_related("performed_by", "content_type")
        return log_visibility(request, self.admin_site).apply(queryset)

    def same_transaction_query(self, entries: QuerySet[Any], entry: Any) -> QuerySet[Any]:
        """Return the other entries of ``entry``'s transaction, oldest first, as the entry page lists them.

        Ordered by ``id + 0``, not ``id``: on a partitioned log, ordering by
        ``id`` with a LIMIT lets the planner walk every partition's primary
        key in order and filter on the transaction (measured: 465 ms at 10^6
        entries), where the BRIN index on ``transaction_id`` finds the few
        rows of one transaction in each partition and a top-N sort orders them.
        """
        # only(): what the list shows, not every entry's changes; a DELETE's row names its deleted object.
        changes_field = type(entry)._meta.get_field("changes")
        return (
            entries.select_related(None)
            .select_related("content_type")
            .filter(transaction_id=entry.transaction_id)
            .exclude(pk=entry.pk)
            .order_by(F("id") + 0)
            .only("pk", "action", "object_id", "content_type", "table_name")
            .annotate(
                audit_log_deleted_row=Case(
                    When(action=Action.DELETE, then=F("changes")),
                    default=Value(None),
                    output_field=changes_field.clone(),  # decodes as the log's field does, odd JSON included
                )
            )
        )

    def get_object(self, request: HttpRequest, object_id: str, from_field: str | None = None) -> Any:
        """Return the entry, from the primary if the read database does not hold it (yet).

        A revert or restore redirects to its new entry's page at once, before
        a replica may have replayed it: one query more, only for an entry the
        read database lacks (a hidden or missing entry is still None).
        """
        entry = super().get_object(request, object_id, from_field)
        if entry is not None:
            return entry
        queryset, primary = self.get_queryset(request), log_primary_database()
        if queryset.db == primary:
            return None
        field = self.model._meta.pk if from_field is None else self.model._meta.get_field(from_field)
        try:
            return queryset.using(primary).get(**{field.name: field.to_python(object_id)})
        except (self.model.DoesNotExist, ValidationError, ValueError):
            return None

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        """Use the changelist that formats a page of entries at once."""
        return LogEntryChangeList

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        """Show the log with its newest seal (``manage.py audit_log_seal``), one query more.

        A URL with empty filter parameters (``?user=&at_after=``, as a form
        submitted without JavaScript sends them) redirects to itself without
        them, so the address bar holds a URL worth sharing.
        """
        shorter = url_without_empty_filters(request, self)
        if shorter is not None:
            return HttpResponseRedirect(shorter)
        seal = last_seal(log_read_database())
        return super().changelist_view(request, {"audit_log_seal": seal, **(extra_context or {})})

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Any], search_term: str
    ) -> tuple[QuerySet[Any], bool]:
        """Search object ids and context, and match a context id exactly when the term is a UUID.

        No index serves the search, so it is bounded (see
        :func:`~audit_log_admin.limits.bound_search`): its first
        ``search_max_words`` words, and only in a list of at most
        ``search_max_entries`` entries (one query finds out).
        """
        search_term, allowed = bound_search(
            request, queryset, search_term, max_words=self.search_max_words, max_entries=self.search_max_entries
        )
        if not allowed:
            return queryset.none(), False
        results, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        try:
            context_id = uuid.UUID(search_term.strip())
        except ValueError:
            return results, may_have_duplicates
        return results | queryset.filter(context_id=context_id), may_have_duplicates

    def get_audit_log_formatter(self, request: HttpRequest) -> DiffFormatter:
        """Return the formatter of this request (``AUDIT_LOG_ADMIN_FORMATTER``)."""
        return conf.formatter_class(request=request, admin_site=self.admin_site)

    def get_fields(self, request: HttpRequest, obj: Any = None) -> list[Any]:
        """Return no form fields: the entry page renders the entry itself (see ``render_change_form``)."""
        return []

    # -- changelist columns -------------------------------------------------------

    def _display(self, entry: BaseLogEntry) -> EntryDisplay:
        display = getattr(entry, "audit_log_admin", None)
        if display is None:  # a column used outside LogEntryChangeList (no request: no links)
            formatter = conf.formatter_class(admin_site=self.admin_site)
            formatter.prefetch([entry], related=False, objects=True)
            display = row_display(formatter, entry)
        return display

    @admin.display(description=gettext_lazy("date/time"))
    def when(self, entry: BaseLogEntry) -> str:
        """When the change was made, in the current time zone: to the minute, the full time on hover.

        One line ("2026-12-01 14:03") keeps the column narrow; a ``<time>``
        element carries the exact moment for the title and for machines.
        """
        moment = local_time(entry.at)
        return format_html(
            '<time class="audit-log-when" datetime="{}" title="{}">{}</time>',
            moment.isoformat(),
            date_format(moment, "Y-m-d H:i:s T").strip(),  # no zone name for a naive time (USE_TZ = False)
            date_format(moment, "Y-m-d H:i"),
        )

    @admin.display(description=gettext_lazy("action"))
    def action_label(self, entry: BaseLogEntry) -> str:
        """The action, as a badge."""
        return format_html(
            '<span class="audit-log-action audit-log-action-{}">{}</span>',
            entry.action.lower(),
            entry.get_action_display(),
        )

    @admin.display(description=gettext_lazy("model"))
    def model_label(self, entry: BaseLogEntry) -> str:
        """The logged model's name."""
        return self._display(entry).model

    @admin.display(description=gettext_lazy("object"))
    def object_label(self, entry: BaseLogEntry) -> str:
        """The logged object, linked to its admin page while it exists; a long name is cut, whole on hover."""
        value = self._display(entry).object
        return _cut(_link(value), value.text) if value is not None else ""

    @admin.display(description=gettext_lazy("user"))
    def who(self, entry: BaseLogEntry) -> str:
        """Who made the change, linked to the user's admin page while the user exists; on one line."""
        value = self._display(entry).who
        return _cut(_link(value), value.text)

    @admin.display(description=gettext_lazy("context"))
    def context_type_label(self, entry: BaseLogEntry) -> str:
        """The kind of context, and its one-line summary (a request's path ...), cut to the column, whole on hover."""
        display = self._display(entry)
        label = format_html('<span class="audit-log-context-type">{}</span>', entry.context_type_label)
        if not display.context:
            return label
        summary = format_html(
            '<div class="audit-log-context audit-log-cut" title="{}">{}</div>', display.context, display.context
        )
        return format_html("{}{}", label, summary)

    @admin.display(description=gettext_lazy("changes"))
    def summary(self, entry: BaseLogEntry) -> str:
        """The changed fields, in short."""
        return self._display(entry).summary

    # -- the entry page ------------------------------------------------------------

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Any = None,
    ) -> HttpResponse:
        """Add the entry's diff, context and links to the (read-only) change form."""
        if obj is not None:
            detail = self.get_entry_detail(request, obj)
            context["audit_log"] = detail
            # "Changed: Invoice INV-7" says more than the entry's str() (a table name and a UTC time);
            # the template's breadcrumb says the same.
            context["subtitle"] = detail.heading
        return super().render_change_form(request, context, add, change, form_url, obj)

    def get_entry_detail(self, request: HttpRequest, entry: BaseLogEntry) -> EntryDetail:
        """Collect what the entry page shows: diff, context, custom fields and links."""
        formatter = self.get_audit_log_formatter(request)
        formatter.prefetch([entry], objects=True)
        obj_display = formatter.format_object(entry)
        gone = formatter.logged_object(entry) is None and not formatter.object_unloadable(entry)
        # The entry's other lists read where the entry was found (the primary, for an entry a replica lacks).
        entries = self.get_queryset(request).using(entry._state.db) if entry._state.db else self.get_queryset(request)
        own_row = deleted_row(entries, entry) if gone else None
        label = label_object(formatter, entry, deleted_row=own_row)
        if obj_display.kind != "unloadable":  # the formatter's label is the one its other pages show
            obj_display = replace(obj_display, text=label.short)
        display = EntryDisplay(
            entry=entry,
            diff=formatter.format_entry(entry),
            who=formatter.format_user(entry),
            context=formatter.format_context(entry),
            object=obj_display,
            model=formatter.format_model(entry),
            summary=formatter.summarize(entry) if formatter.is_link(entry) else "",
        )
        context_json, context_note = formatter.format_context_json(entry)
        heading = f"{entry.get_action_display()}: {label.full}"
        if display.summary:  # a many-to-many link: "Tags: link added (Article Ethiopia)"
            heading = f"{display.summary} ({label.full})"
        detail = EntryDetail(
            display=display,
            context_json=context_json,
            context_note=context_note,
            heading=heading,
            context_rows=context_rows(entry),
        )
        detail.actions = entry_actions(self.admin_site, request, entry, formatter)
        base_fields = {f.name for f in BaseLogEntry._meta.get_fields()}
        for model_field in type(entry)._meta.concrete_fields:
            if model_field.name not in base_fields:
                value = model_field.value_from_object(entry)
                detail.extra_fields.append(
                    (str(capfirst(model_field.verbose_name)), "" if value is None else one_line(value))
                )

        obj = formatter.logged_object(entry)
        if obj is not None and obj_display.url:
            detail.links.append((_("Object"), obj_display.url))
            opts = obj._meta
            history = reverse(
                f"{self.admin_site.name}:{opts.app_label}_{opts.model_name}_history",
                args=(quote(obj.pk),),
                current_app=self.admin_site.name,
            )
            detail.links.append((_("Object history"), history))
        all_entries = log_changelist_url(self.admin_site, model=entry.content_type_id, object_id=entry.object_id)
        model = formatter.model_info(entry).model
        if model is not None and is_audited(model) and all_entries:  # the model filter offers audited models
            detail.links.append((_("All entries of this object"), all_entries))
        if all_entries:
            detail.links.append(
                (
                    _("Entries of this transaction"),
                    log_changelist_url(self.admin_site, transaction=entry.transaction_id),
                )
            )
        if entry.context_id is not None and all_entries:
            detail.links.append(
                (_("Entries of this context"), log_changelist_url(self.admin_site, context_id=entry.context_id))
            )

        others_query = self.same_transaction_query(entries, entry)[: self.same_transaction_limit + 1]
        try:
            with statement_timeout(others_query.db):
                others = list(others_query)
        except LogQueryTimeout:
            others = []
            detail.transaction_note = _("The other entries of this transaction took too long to find.")
        detail.more_in_transaction = len(others) > self.same_transaction_limit
        others = others[: self.same_transaction_limit]
        # The objects, one query per model; the entry's own object is fetched already.
        own = (entry.content_type_id, entry.object_id)
        formatter.prefetch(
            [other for other in others if (other.content_type_id, other.object_id) != own], related=False, objects=True
        )
        # An object deleted in this transaction is named by the row its DELETE logged, on each of its lines.
        deleted_rows = {
            (other.content_type_id, other.object_id): other.audit_log_deleted_row
            for other in others
            if other.action == Action.DELETE
        }
        if own_row is not None:
            deleted_rows[own] = own_row
        actions = dict(Action.choices)
        linked = entry_url(request, self.admin_site, entry) != ""  # may the user view entries?
        entry_opts = type(entry)._meta
        for other in others:
            url = ""
            if linked:
                url = reverse(
                    f"{self.admin_site.name}:{entry_opts.app_label}_{entry_opts.model_name}_change",
                    args=(quote(other.pk),),
                    current_app=self.admin_site.name,
                )
            action = str(actions.get(other.action, other.action))
            other_label = label_object(
                formatter, other, deleted_row=deleted_rows.get((other.content_type_id, other.object_id))
            )
            detail.same_transaction.append((url, action, other_label.full))
        return detail


def register_log_entry_admin(site: admin.AdminSite | None = None) -> bool:
    """Register ``LogEntryAdmin`` for the configured entry model, unless disabled or already registered.

    Called when the app is ready. Set ``AUDIT_LOG_ADMIN_REGISTER = False`` to
    register your own ``LogEntryAdmin`` subclass instead; registering yours
    first (any ``admin.py`` runs before this) works too.

    Args:
        site: The admin site; ``admin.site`` by default.

    Returns:
        True if it registered the admin.
    """
    site = site if site is not None else admin.site
    if not conf.register:
        return False
    try:
        model = get_log_entry_model()
    except ImproperlyConfigured:
        # AUDIT_LOG_ENTRY_MODEL is missing or wrong: audit_log.E002 says so,
        # with a hint, where a traceback here would stop every command.
        return False
    if site.is_registered(model):
        return False
    site.register(model, LogEntryAdmin)
    return True
