"""How one stored value is shown: a method per kind of field, and the inline diffs of long text and JSON.

:class:`ValueFormatMixin` gives :class:`~audit_log_admin.diff.DiffFormatter`
its ``format_*`` value hooks: :meth:`~ValueFormatMixin.format_value` dispatches
on the model field to one method per kind of value (foreign key, choice,
boolean, date and time, number, JSON, array, binary, text ...), and
:meth:`~ValueFormatMixin.format_text_change` and
:meth:`~ValueFormatMixin.format_json_change` decide whether a change is shown
as an inline word diff or key by key rather than side by side. The output is
plain text (:class:`~audit_log_admin.diff_data.DisplayValue`); the templates
escape it.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.utils import formats, timezone
from django.utils.text import capfirst
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from .diff_data import DisplayValue, JsonDiffDisplay, JsonKeyRow
from .formatter_base import FormatterBase, is_foreign_key
from .json_diff import json_diff, json_path, json_path_parts, pretty_json
from .word_diff import TextSegment, word_diff


class ValueFormatMixin(FormatterBase):
    """Format stored values, one overridable method per kind of value.

    The ``format_*`` value methods take the model field (None when the column
    is no longer on the model) and the value as the trigger stored it (the
    JSON form of PostgreSQL's ``to_jsonb``) and return a :class:`DisplayValue`.
    They may assume the value is neither NULL nor masked; :meth:`format_value`
    dispatches to them and must never raise, so every method falls back to
    :meth:`format_raw` on data it cannot read.

    Attributes:
        long_text_threshold: Changes of strings at least this long (or
            spanning lines) get an inline word diff; ``TextField`` changes
            always do.
        max_diff_tokens: Longer texts are shown whole, not diffed.
        binary_preview_bytes: How many bytes of a binary value are shown.
        json_max_keys: JSON objects with more keys than this (nested ones
            counted) are shown whole, side by side, not key by key.
        json_max_depth: Objects nested deeper than this are compared as
            whole values in a key-by-key diff.
        json_value_limit: How many characters of one key's value a key-by-key
            diff shows.
    """

    long_text_threshold = 60
    max_diff_tokens = 4_000
    binary_preview_bytes = 16
    json_max_keys = 500
    json_max_depth = 6
    json_value_limit = 1_000

    def format_value(
        self, model_field: models.Field[Any, Any] | None, value: Any, *, masked: bool = False, db: str = "default"
    ) -> DisplayValue:
        """Format one stored value by dispatching on the kind of field; never raises.

        Args:
            model_field: The field the column belongs to, or None if no field
                of the model has the column any more.
            value: The stored value.
            masked: True if the column is masked.
            db: The database the entry was read from (related objects live there).

        Returns:
            The display value.
        """
        try:
            if masked and value is not None:
                return self.format_masked(model_field, value)
            if value is None:
                return self.format_null(model_field)
            if model_field is None:
                return self.format_missing_column(value)
            if is_foreign_key(model_field):
                return self.format_foreign_key(model_field, value, db=db)  # type: ignore[arg-type]  # checked
            if model_field.choices:
                return self.format_choice(model_field, value)
            if isinstance(model_field, models.BooleanField):
                return self.format_boolean(model_field, value)
            if isinstance(model_field, models.DateTimeField):
                return self.format_datetime(model_field, value)
            if isinstance(model_field, models.DateField):
                return self.format_date(model_field, value)
            if isinstance(model_field, models.TimeField):
                return self.format_time(model_field, value)
            if isinstance(model_field, models.DecimalField | models.FloatField | models.IntegerField):
                return self.format_number(model_field, value)
            if isinstance(model_field, models.JSONField):
                return self.format_json(model_field, value)
            if isinstance(model_field, ArrayField):
                return self.format_array(model_field, value, db=db)
            if isinstance(model_field, models.BinaryField):
                return self.format_binary(model_field, value)
            if isinstance(model_field, models.CharField | models.TextField):
                return self.format_text(model_field, value)
            return self.format_other(model_field, value)
        except Exception:  # noqa: BLE001  # a value the hooks cannot read must not break the page
            return self.format_raw(value)

    def format_raw(self, value: Any) -> DisplayValue:
        """Show a value as stored: strings as they are (an empty one as such), anything else as JSON."""
        if isinstance(value, str) and not value:
            return self.format_empty_string(None)
        if isinstance(value, str):
            return DisplayValue(text=value, kind="raw")
        return DisplayValue(text=pretty_json(value), kind="json" if isinstance(value, dict | list) else "raw")

    def format_null(self, model_field: models.Field[Any, Any] | None) -> DisplayValue:
        """Show NULL as the admin's empty value."""
        return DisplayValue(text=self.empty_value_display, kind="empty")

    def format_empty_string(self, model_field: models.Field[Any, Any] | None) -> DisplayValue:
        """Show an empty string as a muted "empty", so it is not mistaken for NULL (the admin's empty value)."""
        return DisplayValue(text=_("empty"), kind="blank")

    def format_masked(self, model_field: models.Field[Any, Any] | None, value: Any) -> DisplayValue:
        """Show a masked column: the value was never recorded, only that it changed."""
        return DisplayValue(text=_("hidden"), kind="masked")

    def format_missing_column(self, value: Any) -> DisplayValue:
        """Show the value of a column that no field of the model has any more."""
        return self.format_raw(value)

    def format_foreign_key(self, model_field: models.ForeignKey[Any, Any], value: Any, *, db: str) -> DisplayValue:
        """Show a foreign key as the related object's ``str()``, linked to its admin page."""
        obj = self.related_object(model_field, value, db)
        if obj is None:
            related = model_field.related_model._meta
            names = {"model": capfirst(related.verbose_name), "id": value}
            if self.related_unloadable(model_field, value, db):
                return DisplayValue(text=_("%(model)s %(id)s (could not be loaded)") % names, kind="unloadable")
            return DisplayValue(text=_("%(model)s %(id)s (deleted)") % names, kind="deleted")
        return DisplayValue(text=self.object_text(obj), url=self.admin_url(obj))

    def format_choice(self, model_field: models.Field[Any, Any], value: Any) -> DisplayValue:
        """Show a choice as its label (the stored value if it is no longer a choice)."""
        if isinstance(value, Mapping | list):
            return self.format_raw(value)  # no choice, and to_python() would str() it recursively
        python_value = model_field.to_python(value)
        for choice, label in model_field.flatchoices:
            if choice == python_value:
                return DisplayValue(text=str(label))
        return self.format_raw(value)

    def format_boolean(self, model_field: models.Field[Any, Any], value: Any) -> DisplayValue:
        """Show a boolean as the admin does (a yes/no icon, "Yes"/"No" as its text)."""
        if not isinstance(value, bool):
            return self.format_raw(value)
        return DisplayValue(text=_("Yes") if value else _("No"), kind="boolean", boolean=value)

    def format_datetime(self, model_field: models.Field[Any, Any], value: Any) -> DisplayValue:
        """Show a timestamp in the current time zone and the admin's format."""
        moment = datetime.datetime.fromisoformat(value)  # "infinity" or a BC date: ValueError, shown raw
        return DisplayValue(text=str(formats.localize(local_time(moment))), kind="datetime")

    def format_date(self, model_field: models.Field[Any, Any], value: Any) -> DisplayValue:
        """Show a date in the admin's format."""
        return DisplayValue(text=str(formats.localize(datetime.date.fromisoformat(value))), kind="datetime")

    def format_time(self, model_field: models.Field[Any, Any], value: Any) -> DisplayValue:
        """Show a time of day in the admin's format."""
        return DisplayValue(text=str(formats.localize(datetime.time.fromisoformat(value))), kind="datetime")

    def format_number(self, model_field: models.Field[Any, Any], value: Any) -> DisplayValue:
        """Show a number in the admin's format (decimals with the field's decimal places)."""
        if isinstance(value, bool) or not isinstance(value, int | Decimal | float):
            return self.format_raw(value)  # "NaN", "Infinity"
        places = model_field.decimal_places if isinstance(model_field, models.DecimalField) else None
        return DisplayValue(text=formats.number_format(value, places), kind="number")

    def format_json(self, model_field: models.Field[Any, Any], value: Any) -> DisplayValue:
        """Show a JSON value pretty-printed."""
        return DisplayValue(text=pretty_json(value), kind="json")

    def format_array(self, model_field: ArrayField[Any, Any], value: Any, *, db: str = "default") -> DisplayValue:
        """Show an array as its items, each formatted like its base field, separated by commas."""
        if not isinstance(value, list) or any(isinstance(item, list) for item in value):
            return self.format_raw(value)
        return DisplayValue(
            text=", ".join(self.format_value(model_field.base_field, item, db=db).text for item in value)
        )

    def format_binary(self, model_field: models.Field[Any, Any], value: Any) -> DisplayValue:
        """Show binary data as its size and first bytes (PostgreSQL stores a backslash, ``x`` and hex digits)."""
        if not (isinstance(value, str) and value.startswith("\\x")):
            return self.format_raw(value)
        hex_digits = value[2:]
        size = len(hex_digits) // 2
        preview = hex_digits[: self.binary_preview_bytes * 2]
        more = "…" if size > self.binary_preview_bytes else ""
        text = ngettext("%(size)d byte", "%(size)d bytes", size) % {"size": size}
        return DisplayValue(text=f"{text}: {preview}{more}" if preview else text, kind="binary")

    def format_text(self, model_field: models.Field[Any, Any], value: Any) -> DisplayValue:
        """Show text as it is (an empty string as such, an array or object as stored)."""
        if isinstance(value, Mapping | list) or (isinstance(value, str) and not value):
            return self.format_raw(value)
        return DisplayValue(text=value if isinstance(value, str) else str(value))

    def format_other(self, model_field: models.Field[Any, Any], value: Any) -> DisplayValue:
        """Show a value of any other field type (UUID, duration, range ...) as stored."""
        return self.format_raw(value)

    def format_text_change(
        self, model_field: models.Field[Any, Any] | None, old: Any, new: Any
    ) -> tuple[TextSegment, ...] | None:
        """Return an inline word diff for a change of long text, or None to show old and new side by side.

        Text fields (``TextField``) always get one; other strings when either
        side is at least ``long_text_threshold`` characters or spans lines.
        Not when one side is empty: all struck or all new text would hide that
        the other side is an empty string, which side by side shows.
        """
        if not (isinstance(old, str) and isinstance(new, str)) or not old or not new:
            return None
        if model_field is not None and (
            model_field.choices or not isinstance(model_field, models.CharField | models.TextField)
        ):
            return None
        long_text = isinstance(model_field, models.TextField)
        if not long_text and max(len(old), len(new)) < self.long_text_threshold and "\n" not in old + new:
            return None
        return word_diff(old, new, max_tokens=self.max_diff_tokens)

    def format_json_change(
        self, model_field: models.Field[Any, Any] | None, old: Any, new: Any
    ) -> JsonDiffDisplay | None:
        """Return the keys of a JSON object that changed, or None to show old and new side by side.

        For ``JSONField`` columns (and columns no field has any more) whose
        values before and after are both objects: keys added, removed and
        changed, nested objects by path (``dimensions.width``), values as
        compact JSON; unchanged keys apart, to be shown collapsed. Lists,
        scalars and objects too big to list (``json_max_keys``) are shown
        side by side.
        """
        if model_field is not None and not isinstance(model_field, models.JSONField):
            return None
        keys = json_diff(old, new, max_keys=self.json_max_keys, max_depth=self.json_max_depth)
        if keys is None:
            return None
        rows = [
            JsonKeyRow(
                path=json_path(key.path),
                parts=json_path_parts(key.path),
                op=key.op,
                old="" if key.op == "added" else self.json_value_text(key.old),
                new="" if key.op == "removed" else self.json_value_text(key.new),
            )
            for key in keys
        ]
        return JsonDiffDisplay(
            changed=tuple(row for row in rows if row.op != "equal"),
            unchanged=tuple(row for row in rows if row.op == "equal"),
        )

    def json_value_text(self, value: Any) -> str:
        """Return one value of a key-by-key JSON diff as compact JSON, cut at ``json_value_limit`` characters."""
        text = pretty_json(value, indent=None)
        if len(text) <= self.json_value_limit:
            return text
        rest = len(text) - self.json_value_limit
        more = ngettext("%(count)d more character", "%(count)d more characters", rest) % {"count": rest}
        return f"{text[: self.json_value_limit]}… ({more})"


def local_time(moment: datetime.datetime) -> datetime.datetime:
    """Return ``moment`` in the current time zone, as templates show it (naive times are left alone)."""
    if settings.USE_TZ and timezone.is_aware(moment):
        return timezone.localtime(moment)
    return moment
