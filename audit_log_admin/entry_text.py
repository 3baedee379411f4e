"""What an entry is about, in a few words: who, which object and model, where from, and a summary.

:class:`EntryTextMixin` gives :class:`~audit_log_admin.diff.DiffFormatter` the
descriptions of an entry that are not its diff, each an overridable method:
the user (:meth:`~EntryTextMixin.format_user`), the logged object and its
model (:meth:`~EntryTextMixin.format_object`,
:meth:`~EntryTextMixin.format_model`), the context in one line or as JSON
(:meth:`~EntryTextMixin.format_context`,
:meth:`~EntryTextMixin.format_context_json`) and a short summary of the fields
changed (:meth:`~EntryTextMixin.summarize`). The output is plain text; the
templates escape it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from django.core.exceptions import ObjectDoesNotExist
from django.utils.text import capfirst
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from audit_log.models import HTTP_REQUEST, MANAGEMENT_COMMAND, UndecodableJSON
from audit_log.sql import UNKNOWN_CONTEXT_TYPE

from .diff_data import DisplayValue, compute_diff
from .formatter_base import FormatterBase
from .json_diff import one_line, pretty_json

if TYPE_CHECKING:
    from audit_log.models import BaseLogEntry

#: Options of every management command, left out of a command's one-line summary.
COMMON_COMMAND_OPTIONS = frozenset(
    {"verbosity", "settings", "pythonpath", "traceback", "no_color", "force_color", "skip_checks"}
)


class EntryTextMixin(FormatterBase):
    """Describe a log entry apart from its diff: who, what, where from, and which fields.

    Attributes:
        summary_fields: How many field names a short summary lists.
    """

    summary_fields = 3

    # -- who, what, where -----------------------------------------------------

    def format_user(self, entry: BaseLogEntry) -> DisplayValue:
        """Show who made the change: linked to the user's admin page while the user exists."""
        if entry.performed_by_id is None:
            return DisplayValue(
                text=entry.performed_by_label or self.empty_value_display,
                kind="empty" if not entry.performed_by_label else "text",
            )
        try:
            user = entry.performed_by  # select_related leaves None for a deleted user
        except ObjectDoesNotExist:
            user = None
        if user is None:
            label = entry.performed_by_label or f"#{entry.performed_by_id}"
            return DisplayValue(text=_("%(user)s (deleted user)") % {"user": label}, kind="deleted")
        return DisplayValue(text=entry.performed_by_label or str(user), url=self.admin_url(user))

    def format_object(self, entry: BaseLogEntry) -> DisplayValue:
        """Show the logged object: its ``str()`` linked to its admin page, or a label if it is gone.

        Needs ``prefetch(entries, objects=True)``.
        """
        obj = self.logged_object(entry)
        if obj is not None:
            return DisplayValue(text=self.object_text(obj), url=self.admin_url(obj))
        info = self.model_info(entry)
        name = capfirst(info.model._meta.verbose_name) if info.model is not None else entry.table_name
        names = {"model": name, "id": entry.object_id}
        if self.object_unloadable(entry):
            return DisplayValue(text=_("%(model)s %(id)s (could not be loaded)") % names, kind="unloadable")
        return DisplayValue(text=_("%(model)s %(id)s (deleted)") % names, kind="deleted")

    def format_model(self, entry: BaseLogEntry) -> str:
        """Name the entry's model (the table name if the model is gone)."""
        info = self.model_info(entry)
        if info.model is not None:
            return str(capfirst(info.model._meta.verbose_name))
        return entry.table_name

    def format_context(self, entry: BaseLogEntry) -> str:
        """Summarize where a change came from in one line.

        Requests show their method and path, management commands their name,
        arguments and options, changes without a context the database user and
        application, other contexts their top-level values.
        """
        if isinstance(entry.context, UndecodableJSON):
            return _("(context could not be decoded)")
        context = entry.context if isinstance(entry.context, Mapping) else {}
        # one_line(): a value of any shape (nested lists from raw SQL ...) becomes text without recursion.
        if entry.context_type == HTTP_REQUEST:
            return " ".join(one_line(context.get(key) or "") for key in ("method", "path")).strip()
        if entry.context_type == MANAGEMENT_COMMAND:
            args, kwargs = context.get("args"), context.get("kwargs")
            words = [one_line(context.get("command") or "")]
            words += [one_line(arg) for arg in args] if isinstance(args, list) else []
            if isinstance(kwargs, Mapping):
                # Options given (not None or False), without the ones every command has.
                words += [
                    str(key) if value is True else f"{key}={one_line(value)}"
                    for key, value in sorted(kwargs.items())
                    if key not in COMMON_COMMAND_OPTIONS and value is not None and value is not False
                ]
            return " ".join(words).strip()
        if entry.context_type == UNKNOWN_CONTEXT_TYPE:
            parts = [one_line(context.get("db_user") or "")]
            if context.get("application_name"):
                parts.append(f"({one_line(context['application_name'])})")
            return " ".join(parts).strip()
        return ", ".join(f"{key}: {value}" for key, value in context.items() if not isinstance(value, dict | list))

    def format_context_json(self, entry: BaseLogEntry) -> tuple[str, str]:
        """Return the entry's whole context as pretty-printed JSON, and a note if it is shown as stored."""
        if entry.context is None:
            return "", ""
        if isinstance(entry.context, UndecodableJSON):
            note = _("The context could not be decoded (nested too deeply, or a number too long); shown as stored.")
            return self.stored_text(entry.context), note
        return pretty_json(entry.context), ""

    # -- which fields ---------------------------------------------------------

    def summarize(self, entry: BaseLogEntry) -> str:
        """Return a short summary of an entry's changes: the labels of its first few fields."""
        if isinstance(entry.changes, UndecodableJSON):
            return _("(changes could not be decoded)")
        if entry.changes is not None and not isinstance(entry.changes, Mapping):
            return _("(changes are not a JSON object)")
        info = self.model_info(entry)
        if (link := info.links.get(entry.table_name)) is not None:
            found = self.link_changes(entry, link) or ()
            names = {"field": self.link_label(link.link)}
            if [change.added for change in found] == [True]:
                return _("%(field)s: link added") % names
            if [change.added for change in found] == [False]:
                return _("%(field)s: link removed") % names
            return _("%(field)s: link changed") % names
        diff = compute_diff(entry.action, entry.changes)
        columns = sorted((c.column for c in diff.changes), key=lambda c: (info.order.get(c, len(info.order)), c))
        labels = [self.get_label(column, info.fields.get(column)) for column in columns]
        if len(labels) <= self.summary_fields:
            return ", ".join(labels)
        rest = len(labels) - self.summary_fields
        return ngettext("%(fields)s and %(count)d more", "%(fields)s and %(count)d more", rest) % {
            "fields": ", ".join(labels[: self.summary_fields]),
            "count": rest,
        }
