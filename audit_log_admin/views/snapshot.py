"""A state rebuilt from the log, rendered read-only in a ``ModelAdmin``'s own fieldsets and widgets.

:func:`render` builds the admin's own form for the rebuilt instance (its
``get_fieldsets``, ``get_form`` and ``get_readonly_fields``, so the widgets,
labels and layout are the change page's), disables every field, takes the
many-to-many values from the state rather than from the table, and renders
the fieldsets. What the log cannot tell (masked, excluded or new columns,
columns the model no longer has, related rows gone since) becomes a note.
Admin code and widgets run on old data here: whatever fails leaves a
message, never an error page.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib.admin import helpers
from django.contrib.admin.widgets import RelatedFieldWidgetWrapper
from django.db import connections, transaction
from django.db.models import ForeignKey, ManyToManyField, Model
from django.template.loader import render_to_string
from django.utils.safestring import SafeString
from django.utils.text import capfirst
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from audit_log import history
from audit_log.sql import bare_name
from audit_log.triggers import column_of

from ..diff import field_label, one_line
from ..fallbacks import PASSED_ON

if TYPE_CHECKING:
    from django.contrib.admin import ModelAdmin
    from django.http import HttpRequest

#: Why a column's value is not shown, by :data:`audit_log.history.AuditState.unknown_columns` reason.
REASONS = {
    history.MASKED: gettext_lazy("masked in the log"),
    history.EXCLUDED: gettext_lazy("left out of the log"),
    history.NOT_LOGGED: gettext_lazy("not in the log (a field added since?)"),
    history.NOT_CONVERTIBLE: gettext_lazy("logged as a value the field no longer takes"),
}


@dataclass(frozen=True)
class Rendered:
    """A rendered state.

    Attributes:
        html: The fieldsets, rendered ("" if they could not be).
        notes: What the form cannot show, one sentence each.
        media: The form's and the admin's JavaScript and CSS.
        problem: Why the fieldsets could not be rendered, if they could not.
    """

    html: str = ""
    notes: tuple[str, ...] = ()
    media: forms.Media = field(default_factory=forms.Media)
    problem: str = ""


@contextmanager
def savepoint(using: str) -> Iterator[None]:
    """Keep a failing statement from aborting the request's transaction (nothing to keep in autocommit)."""
    with transaction.atomic(using=using) if connections[using].in_atomic_block else nullcontext():
        yield


def render(model_admin: ModelAdmin[Any], request: HttpRequest, state: history.AuditState) -> Rendered:
    """Render ``state`` in ``model_admin``'s fieldsets, every field disabled, with notes."""
    try:
        with savepoint(state.using):
            notes = tuple(state_notes(state))
    except PASSED_ON:
        raise
    except Exception:  # noqa: BLE001  # a related model that cannot be queried: the form may still render
        notes = (_("Whether the related objects still exist could not be checked."),)
    try:
        with savepoint(state.using):
            adminform = readonly_adminform(model_admin, request, state)
            html = render_to_string("audit_log_admin/snapshot/fieldsets.html", {"adminform": adminform}, request)
            media = model_admin.media + adminform.media
    except PASSED_ON:
        raise
    except Exception as error:  # noqa: BLE001  # admin code and widgets on logged data: say so, show the rest
        text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        return Rendered(notes=notes, problem=_("The form cannot show this state: %s") % text)
    return Rendered(html=SafeString(html), notes=notes, media=media)


def readonly_adminform(
    model_admin: ModelAdmin[Any], request: HttpRequest, state: history.AuditState
) -> helpers.AdminForm:
    """Return the admin's form for the rebuilt instance, every field disabled, many-to-many values from the log.

    The instance is passed as the object, so admins that vary their fieldsets
    or form by object (``UserAdmin``: its add form for None) show the change page's.
    """
    instance = state.instance
    fieldsets: list[Any] = list(model_admin.get_fieldsets(request, instance))
    readonly = tuple(model_admin.get_readonly_fields(request, instance))
    form_class = model_admin.get_form(request, instance)
    # The form would read the links from the table (a deleted object has none, a reused key
    # another object's): the state's sets, or none, win as initial values.
    initial = {many.name: sorted(state.m2m.get(many.name, ()), key=str) for many in instance._meta.many_to_many}
    form = form_class(instance=instance, initial=initial)
    for form_field in form.fields.values():
        form_field.disabled = True
        widget = form_field.widget
        if isinstance(widget, RelatedFieldWidgetWrapper):
            # No "add", "change", "delete" or "view" buttons next to a value of the past.
            widget.can_add_related = widget.can_change_related = widget.can_delete_related = False
            widget.can_view_related = False
    return helpers.AdminForm(form, fieldsets, {}, readonly, model_admin=model_admin)


def state_notes(state: history.AuditState) -> Iterator[str]:
    """Say what a rendering of ``state`` cannot show: unknown and dropped columns, related rows gone.

    Costs one query per foreign key and per logged many-to-many field with values.
    """
    model = state.model
    fields = {bare_name(column_of(f)): f for f in model._meta.concrete_fields if f.column}

    def label(column: str) -> str:
        model_field = fields.get(column)
        return field_label(model_field) if model_field is not None else column

    for column, reason in sorted(state.unknown_columns.items()):
        why = REASONS.get(reason, reason)
        yield _("%(field)s: %(why)s, so not shown; a restore gives it its default.") % {
            "field": label(column),
            "why": why,
        }
    for column in sorted(state.missing_columns):
        yield _("%(column)s = %(value)s: logged, but the model no longer has this column (not restored).") % {
            "column": column,
            "value": one_line(state.values.get(column)),
        }
    for many in model._meta.many_to_many:
        if many.name not in state.m2m:
            yield _("%(field)s: its links are not logged, so none are shown or restored.") % {
                "field": capfirst(many.verbose_name)
            }
    yield from _gone_targets(state)


def _gone_targets(state: history.AuditState) -> Iterator[str]:
    """Name the related rows that the state points to and that no longer exist."""
    instance = state.instance
    for model_field in state.model._meta.concrete_fields:
        if not isinstance(model_field, ForeignKey):
            continue
        value = getattr(instance, model_field.attname)
        if value is None:
            continue
        target = model_field.target_field
        related: type[Model] = target.model
        if not related._base_manager.using(state.using).filter(**{target.attname: value}).exists():
            yield _("%(field)s: %(model)s %(value)s no longer exists.") % {
                "field": capfirst(model_field.verbose_name),
                "model": capfirst(related._meta.verbose_name),
                "value": value,
            }
    for many in state.model._meta.many_to_many:
        if not isinstance(many, ManyToManyField) or not state.m2m.get(many.name):
            continue
        related = many.remote_field.model
        wanted = state.m2m[many.name]
        found = set(related._base_manager.using(state.using).filter(pk__in=list(wanted)).values_list("pk", flat=True))
        gone = sorted((str(value) for value in wanted - found), key=str)
        if gone:
            yield _("%(field)s: %(model)s %(values)s no longer exist.") % {
                "field": capfirst(many.verbose_name),
                "model": capfirst(related._meta.verbose_name),
                "values": ", ".join(gone),
            }
