"""The context payload: a context instance as the JSON object the triggers read.

The payload is built once per context and travels with every write made in it
(see ``audit_log.context``), so everything that could make PostgreSQL refuse it
is settled here, before any write depends on it:

* strings lose the characters PostgreSQL cannot store (``clean_text``);
* a character field longer than its ``max_length`` is refused (strict) or cut
  to it (lenient);
* a self-referencing or absurdly nested value is refused (strict) or marked;
* a payload over :data:`MAX_PAYLOAD_BYTES` is refused (strict) or its JSON
  fields are shortened until it fits (lenient).

Strict mode is for ``audit_context(...)``, whose values the programmer passes
in and can fix: the ``ValueError`` comes when the block is entered. Lenient
mode is for contexts built from what a client or a command line sent (the
request middleware, ``AuditLoggedCommand``): those must never cost a write.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.db import models

from .serialization import JSONValue, clean_text, jsonable
from .sql import bare_name
from .triggers import column_of

if TYPE_CHECKING:
    from .models import BaseContext

#: Largest payload accepted, in UTF-8 bytes. It rides with every write
#: statement made in the context, so it is kept small.
MAX_PAYLOAD_BYTES = 32 * 1024

#: In lenient mode, strings inside JSON fields of an oversized payload are cut to this length.
SHORTENED_STRING_LENGTH = 200

#: Key added to the ``context`` JSON of a payload that lenient mode shortened.
TRUNCATED_KEY = "truncated"


@dataclass(frozen=True)
class _Column:
    """How one field of the context model goes into the payload (worked out once per model)."""

    field: Any
    attname: str
    column: str
    kind: str  # "text", "uuid", "json" or "other"
    max_length: int | None  # a CharField's: its column's


_PLANS: dict[type[models.Model], tuple[_Column, ...]] = {}


def _plan(model: type[models.Model]) -> tuple[_Column, ...]:
    plan = _PLANS.get(model)
    if plan is None:
        columns = []
        for field in model._meta.concrete_fields:
            if isinstance(field, models.JSONField):
                kind = "json"
            elif isinstance(field, models.UUIDField):
                kind = "uuid"
            elif isinstance(field, models.CharField | models.TextField):
                kind = "text"
            else:
                kind = "other"
            # Only a CharField's max_length is its column's (a UUIDField has one too).
            max_length = field.max_length if isinstance(field, models.CharField) else None
            columns.append(_Column(field, field.attname, bare_name(column_of(field)), kind, max_length))
        plan = _PLANS[model] = tuple(columns)
    return plan


def build_payload(instance: BaseContext, *, strict: bool) -> str:
    """Serialise ``instance`` into the JSON object the triggers read.

    Args:
        instance: An (unsaved) context model instance.
        strict: Refuse bad values with ``ValueError`` instead of mending them.

    Returns:
        The JSON text: ``{column: value}`` for every concrete field.

    Raises:
        ValueError: In strict mode: a missing or non-text ``context_type``, a
            value longer than its field's ``max_length``, a self-referencing
            value, or a payload over :data:`MAX_PAYLOAD_BYTES`.
    """
    model = type(instance)
    context_type = instance.context_type
    if strict and (not isinstance(context_type, str) or not context_type):
        raise ValueError(f"The audit context_type must be a non-empty string, not {context_type!r}.")
    data: dict[str, JSONValue] = {}
    json_columns = []
    for column in _plan(model):
        raw = getattr(instance, column.attname)
        kind = type(raw)
        # Exact types take the short way; anything else goes through the field.
        if raw is None:
            value: JSONValue = None
        elif column.kind == "text" and kind is str:
            value = clean_text(raw)
        elif column.kind == "uuid" and kind is uuid.UUID:
            value = str(raw)
        else:
            value = jsonable(column.field.get_prep_value(raw), strict=strict)
        if column.kind == "json":
            json_columns.append(column.column)
        if column.max_length is not None and isinstance(value, str) and len(value) > column.max_length:
            if strict:
                raise ValueError(
                    f"Audit context value {model._meta.label}.{column.field.name} is {len(value)} characters long; "
                    f"its column holds at most {column.max_length}. Shorten it, or raise max_length on both the "
                    "context and entry models."
                )
            value = value[: column.max_length]
        data[column.column] = value
    text = _dumps(data)
    if len(text) <= MAX_PAYLOAD_BYTES // 4 or len(text.encode()) <= MAX_PAYLOAD_BYTES:
        return text  # (at most 4 UTF-8 bytes a character: short texts need no encoding to measure)
    if strict:
        raise ValueError(
            f"The audit context is {len(text.encode()):,} bytes as JSON; at most {MAX_PAYLOAD_BYTES:,} are accepted, "
            "because it travels with every write. Record less (an id rather than a document)."
        )
    return _shrink(data, json_columns)


def _dumps(data: dict[str, JSONValue]) -> str:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _shrink(data: dict[str, JSONValue], json_columns: list[str]) -> str:
    """Cut long strings of an oversized lenient payload until it fits, marking the JSON fields cut."""
    for column, value in data.items():
        shortened = _shorten(value)
        if column in json_columns and isinstance(shortened, dict):
            shortened[TRUNCATED_KEY] = True
        data[column] = shortened
    text = _dumps(data)
    if len(text.encode()) <= MAX_PAYLOAD_BYTES:
        return text
    for column in json_columns:
        data[column] = {TRUNCATED_KEY: True}
    return _dumps(data)


def _shorten(value: Any) -> JSONValue:
    if isinstance(value, str) and len(value) > SHORTENED_STRING_LENGTH:
        return value[:SHORTENED_STRING_LENGTH] + "…"
    if isinstance(value, dict):
        return {key: _shorten(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_shorten(item) for item in value]
    return value  # already JSON (jsonable ran first)
