"""What the time-travel pages show, and where the History tab and the entry page link to them.

A rebuilt state is rendered in the ``ModelAdmin``'s own fieldsets, read-only
(:func:`state_display`); a difference between a state and the object now is
turned into log entries that were never saved, so the diff formatter shows it
as it shows any change (:func:`difference_diff`). :class:`HistoryLinks` and
:func:`entry_actions` decide once per page which links a user gets.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib.admin.utils import quote
from django.contrib.contenttypes.models import ContentType
from django.db.models import ForeignKey
from django.template.loader import render_to_string
from django.urls import NoReverseMatch, reverse
from django.utils.safestring import SafeString
from django.utils.text import capfirst
from django.utils.translation import gettext as _

from audit_log import history
from audit_log.loading import get_log_entry_model
from audit_log.models import Action
from audit_log.routing import log_read_database
from audit_log.sql import bare_name
from audit_log.triggers import audit_field

from ..fallbacks import PASSED_ON
from . import snapshot

if TYPE_CHECKING:
    from django.contrib.admin import AdminSite, ModelAdmin
    from django.db.models import Model
    from django.http import HttpRequest

    from audit_log.history_compare import Difference
    from audit_log.models import BaseLogEntry

    from ..diff import DiffFormatter, DisplayValue, FormattedDiff
    from ..links import EntryGroup


def supports(model: type[Model]) -> bool:
    """True if the history can rebuild the model's objects: audited, no multi-table inheritance."""
    concrete = model._meta.concrete_model or model
    return not concrete._meta.parents and audit_field(concrete) is not None


def entry_of(model: type[Model], pk: Any, entry_id: int, *, using: str | None = None) -> BaseLogEntry | None:
    """Return entry ``entry_id`` if it is one of the object's (its own row's or its links'), else None.

    Read from ``using``; default: the log's read database (``audit_log.routing``).
    """
    if not supports(model):
        return None
    using = using or log_read_database()
    content_type = ContentType.objects.db_manager(using).get_for_model(model)
    entries = get_log_entry_model()._default_manager.using(using).select_related("performed_by", "content_type")
    return entries.filter(pk=entry_id, content_type=content_type, object_id=history.key_text(pk)).first()


@dataclass
class StateDisplay:
    """A rebuilt state, ready for the as-of page (the template escapes every text).

    Attributes:
        label: What to call the object then (its ``str()``).
        fieldsets: The admin's fieldsets rendered read-only, or "" if they could not be.
        media: The form's and the admin's JavaScript and CSS.
        form_error: Why the fieldsets are not shown, if they are not.
        values: Every known field and its value, shown instead of the fieldsets.
        unknown: ``(label, reason)`` of the fields whose value the log cannot tell.
        missing: ``(column, value)`` of logged columns the model no longer has.
        notes: Other things to know (related objects deleted since, an incomplete log).
    """

    label: str
    fieldsets: SafeString | str = ""
    media: forms.Media = field(default_factory=forms.Media)
    form_error: str = ""
    values: list[tuple[str, DisplayValue]] = field(default_factory=list)
    unknown: list[tuple[str, str]] = field(default_factory=list)
    missing: list[tuple[str, DisplayValue]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def state_display(
    model_admin: ModelAdmin[Any], request: HttpRequest, formatter: DiffFormatter, state: history.AuditState
) -> StateDisplay:
    """Render a state in the admin's own fieldsets and widgets, read-only, with what the log cannot tell.

    The form is the one the recover preview shows
    (:func:`audit_log_admin.views.snapshot.readonly_adminform`: the
    ``ModelAdmin``'s form for the rebuilt instance, every field disabled,
    many-to-many values from the state). If the admin cannot render the
    instance (a form, widget or display method that fails on old data), the
    values are listed instead, with a note.
    """
    instance = state.instance
    shown = StateDisplay(label=formatter.object_text(instance))
    model = state.model._meta.concrete_model or state.model
    fields = {bare_name(f.column): f for f in model._meta.concrete_fields if f.column}
    shown.unknown = unknown_notes(formatter, model, state.unknown_columns)
    shown.missing = [(c, formatter.format_missing_column(state.values[c])) for c in sorted(state.missing_columns)]
    for many in model._meta.many_to_many:
        if many.name not in state.m2m:
            shown.unknown.append((str(capfirst(many.verbose_name)), str(snapshot.REASONS[history.NOT_LOGGED])))
    if not state.complete:
        shown.notes.append(_("The log starts after this object was created: fields it never recorded are unknown."))
    try:
        with snapshot.savepoint(state.using):  # a widget's failing query must not abort the request's transaction
            shown.notes.extend(gone_related(state))
            admin_form = snapshot.readonly_adminform(model_admin, request, state)
            html = render_to_string("audit_log_admin/snapshot/fieldsets.html", {"adminform": admin_form}, request)
            shown.media = model_admin.media + admin_form.media
            shown.fieldsets = SafeString(html)  # the template engine's output: every value escaped
    except PASSED_ON:
        raise
    except Exception:  # noqa: BLE001  # admin code meeting old data must not break the page: list the values
        shown.form_error = _("The admin's form cannot show this state; its recorded values are listed instead.")
        for column, model_field in fields.items():
            if column in state.values and column not in state.unknown_columns:
                value = formatter.format_value(model_field, state.values[column], db=state.using)
                shown.values.append((formatter.get_label(column, model_field), value))
    return shown


def unknown_notes(formatter: DiffFormatter, model: type[Model], columns: dict[str, str]) -> list[tuple[str, str]]:
    """Return ``(label, reason)`` for columns whose value the log cannot tell."""
    concrete = model._meta.concrete_model or model
    fields = {bare_name(f.column): f for f in concrete._meta.concrete_fields if f.column}
    return [
        (formatter.get_label(column, fields.get(column)), str(snapshot.REASONS.get(reason, reason)))
        for column, reason in columns.items()
    ]


def gone_related(state: history.AuditState) -> list[str]:
    """Name the related objects the state points to (foreign keys, links) that no longer exist.

    One query per foreign key with a value and per many-to-many field with links.
    """
    notes, instance = [], state.instance
    wanted: list[tuple[Any, type[Model], set[Any]]] = []
    for model_field in instance._meta.concrete_fields:
        if isinstance(model_field, ForeignKey) and getattr(instance, model_field.attname) is not None:
            target = model_field.target_field
            wanted.append((model_field, target.model, {getattr(instance, model_field.attname)}))
    for many in instance._meta.many_to_many:
        if state.m2m.get(many.name):
            wanted.append((many, many.remote_field.model, set(state.m2m[many.name])))
    for model_field, related, keys in wanted:
        attname = model_field.target_field.attname if isinstance(model_field, ForeignKey) else "pk"
        manager = related._base_manager.using(state.using)
        found = set(manager.filter(**{f"{attname}__in": list(keys)}).values_list(attname, flat=True))
        if gone := sorted(keys - found, key=str):
            notes.append(
                _("%(field)s: %(model)s %(ids)s, deleted since.")
                % {
                    "field": capfirst(model_field.verbose_name),
                    "model": capfirst(related._meta.verbose_name),
                    "ids": ", ".join(str(key) for key in gone),
                }
            )
    return notes


def difference_diff(formatter: DiffFormatter, difference: Difference, *, since: bool) -> FormattedDiff:
    """Show a difference as a diff: the fields and links that differ.

    Args:
        formatter: The page's formatter.
        difference: The state compared with the object now.
        since: True: from the state to now (what changed since); False: from
            now to the state (what a revert would do).
    """
    state = difference.state
    model = state.model._meta.concrete_model or state.model
    content_type = ContentType.objects.db_manager(state.using).get_for_model(model)
    entry_model = get_log_entry_model()
    then, now = state.values, difference.current_values
    changes = {c: [then.get(c), now.get(c)] if since else [now.get(c), then.get(c)] for c in difference.changed_columns}
    key = history.key_text(state.pk)

    def unsaved(table: str, action: str, values: dict[str, Any]) -> BaseLogEntry:
        # Never saved: the formatter reads content type, table, action and changes, and orders
        # links by id (negative: no entry's, and in the order made).
        entry = entry_model(content_type=content_type, object_id=key, table_name=table, action=action, changes=values)
        entry.pk = -1 - len(entries)
        entry._state.db = state.using
        return entry

    entries: list[BaseLogEntry] = []

    entries.append(unsaved(model._meta.db_table, Action.UPDATE, changes))
    for link in history.links(model):
        name = link.field.name
        back, away = difference.m2m_added.get(name, frozenset()), difference.m2m_removed.get(name, frozenset())
        added, removed = (away, back) if since else (back, away)
        for action, targets in ((Action.INSERT, added), (Action.DELETE, removed)):
            for target in targets:
                value = target if isinstance(target, int | str) else str(target)
                entries.append(unsaved(link.table, action, {link.target_column: value}))
    formatter.prefetch(entries)
    return formatter.format_entries(entries)


# --- links from the History tab and the entry page ---------------------------------------------------


def page_url(site: AdminSite, model: type[Model], page: str, pk: Any, entry_id: int) -> str:
    """Return the URL of a time-travel page (``audit_as_of``, ``audit_revert``) of one object and entry."""
    opts = model._meta
    return reverse(
        f"{site.name}:{opts.app_label}_{opts.model_name}_{page}", args=(quote(pk), entry_id), current_app=site.name
    )


def creates(entry: BaseLogEntry, model: type[Model]) -> bool:
    """True for the object's INSERT: before it the object did not exist, so nothing to revert to."""
    return entry.action == Action.INSERT and entry.table_name == model._meta.db_table


@dataclass(frozen=True)
class HistoryLinks:
    """The time-travel links of one History tab page, permissions checked once for the page.

    Attributes:
        site: The admin site.
        obj: The object.
        supported: Whether its history can be rebuilt at all.
        may_revert: Whether the user may change the object.
    """

    site: AdminSite
    obj: Model
    supported: bool
    may_revert: bool

    @classmethod
    def for_page(cls, model_admin: ModelAdmin[Any], request: HttpRequest, obj: Model) -> HistoryLinks:
        """Check support and the change permission once (the page itself needs the view permission)."""
        supported = supports(type(obj))
        may_revert = supported and model_admin.has_change_permission(request, obj)
        return cls(site=model_admin.admin_site, obj=obj, supported=supported, may_revert=may_revert)

    def as_of_url(self, group: EntryGroup) -> str:
        """Return the row's "View as of here": the state after its newest entry ("" if unsupported)."""
        if not self.supported:
            return ""
        return page_url(self.site, type(self.obj), "audit_as_of", self.obj.pk, group.entries[-1].pk)

    def revert_url(self, group: EntryGroup) -> str:
        """Return the row's "Revert to before this change": the state before its oldest entry, or "".

        None for the row that created the object (before it, the object did
        not exist), nor for a user who may not change the object.
        """
        if not self.may_revert or (group.own is not None and creates(group.own, type(self.obj))):
            return ""
        return page_url(self.site, type(self.obj), "audit_revert", self.obj.pk, group.entries[0].pk)


def entry_actions(
    site: AdminSite, request: HttpRequest, entry: BaseLogEntry, formatter: DiffFormatter
) -> list[tuple[str, str, str]]:
    """Return the entry page's buttons the user may use: ``(label, url, css class)``.

    "View as of here" (view permission), "Revert to before this change"
    (change permission; not for the object's INSERT, nor a deleted object) and,
    for the DELETE of an object that is still gone, "Restore" (add permission)
    when the recover pages are installed. Only for models registered on
    ``site`` with ``AuditLogHistoryMixin`` (call ``formatter.prefetch(...,
    objects=True)`` first: the object is not fetched again).
    """
    from ..admin import AuditLogHistoryMixin  # the admin module imports this one lazily

    model = formatter.model_info(entry).model
    if model is None or not site.is_registered(model) or not supports(model):
        return []
    model_admin = site.get_model_admin(model)
    if not isinstance(model_admin, AuditLogHistoryMixin) or formatter.object_unloadable(entry):
        return []
    obj = formatter.logged_object(entry)
    actions = []
    if model_admin.has_view_or_change_permission(request, obj):
        pk = obj.pk if obj is not None else entry.object_id
        actions.append((_("View as of here"), page_url(site, model, "audit_as_of", pk, entry.pk), "viewlink"))
    if obj is not None and not creates(entry, model) and model_admin.has_change_permission(request, obj):
        url = page_url(site, model, "audit_revert", obj.pk, entry.pk)
        actions.append((_("Revert to before this change"), url, "audit-log-revertlink"))
    deletes = entry.action == Action.DELETE and entry.table_name == model._meta.db_table
    if obj is None and deletes and model_admin.has_add_permission(request):
        opts = model._meta
        try:
            url = reverse(
                f"{site.name}:{opts.app_label}_{opts.model_name}_audit_recover_preview",
                args=(entry.pk,),
                current_app=site.name,
            )
        except NoReverseMatch:
            pass  # the recover pages are not installed
        else:
            actions.append((_("Restore"), url, "addlink"))
    return actions
