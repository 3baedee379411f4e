"""The context of a log entry as labelled rows, for the entry page.

:func:`context_rows` is a pure function of the entry's ``context_type`` and
``context``: a request shows its method, path, query parameters and remote
address; a management command its name, arguments and the options it was
given; a change made without a context ("unknown") the database user,
application and client address the trigger recorded; any other context each
top-level key. Keys a type does not name are shown too, after the known ones.

The rows hold plain text: the template escapes it. Whatever ``context``
holds (a list, a string, nesting thousands of levels deep, JSON Python could
not decode), this never raises; the page keeps the raw JSON behind a
disclosure for what the rows leave out.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from audit_log.models import HTTP_REQUEST, MANAGEMENT_COMMAND, UndecodableJSON
from audit_log.sql import UNKNOWN_CONTEXT_TYPE

# The options every command has, which the one-line summary leaves out too.
from .entry_text import COMMON_COMMAND_OPTIONS
from .json_diff import one_line

if TYPE_CHECKING:
    from django.utils.functional import _StrPromise

    from audit_log.models import BaseLogEntry

#: Rows (and items of one row's table) shown at most; the raw JSON has the rest.
MAX_ROWS = 100
#: Characters of one value shown at most.
MAX_VALUE_LENGTH = 2_000

#: Labels of the keys each built-in context type records, in the order they are shown.
KNOWN_KEYS: dict[str, dict[str, _StrPromise]] = {
    HTTP_REQUEST: {
        "method": gettext_lazy("Method"),
        "path": gettext_lazy("Path"),
        "query_params": gettext_lazy("Query parameters"),
        "remote_addr": gettext_lazy("Remote address"),
        "user_agent": gettext_lazy("User agent"),
        "truncated": gettext_lazy("Cut short"),
    },
    MANAGEMENT_COMMAND: {
        "command": gettext_lazy("Command"),
        "args": gettext_lazy("Arguments"),
        "kwargs": gettext_lazy("Options"),
    },
    UNKNOWN_CONTEXT_TYPE: {
        "db_user": gettext_lazy("Database user"),
        "current_user": gettext_lazy("Current role"),
        "application_name": gettext_lazy("Application"),
        "client_addr": gettext_lazy("Client address"),
        "backend_pid": gettext_lazy("Backend PID"),
    },
}

#: Keys whose values are network addresses (shown without a host mask).
ADDRESS_KEYS = frozenset({"remote_addr", "client_addr"})


@dataclass(frozen=True)
class ContextRow:
    """One labelled row of an entry's context.

    Attributes:
        label: What the value is ("Path", "Database user", or a custom key).
        text: The value as one line of text (nested values as compact JSON);
            "" when the row shows ``items`` instead.
        kind: ``"text"``, ``"empty"`` (no value: shown as the empty-value
            sign) or ``"json"`` (an array or object).
        items: ``(key, value)`` pairs shown as a small table (query
            parameters, options); a key repeats for each of its values.
        more: How many items were left out (see :data:`MAX_ROWS`).
    """

    label: str
    text: str = ""
    kind: str = "text"
    items: tuple[tuple[str, str], ...] = ()
    more: int = 0


def display_address(value: Any) -> str:
    """Return an address as PostgreSQL's ``inet`` text or a client gave it, without a host mask.

    ``inet_client_addr()::text`` reads ``127.0.0.1/32``: a single host's
    ``/32`` (``/128`` for IPv6) is dropped, a real network (``10.0.0.0/8``)
    and anything that is no address are kept as they are.

    Args:
        value: The stored value.

    Returns:
        The address as text.
    """
    text = one_line(value)
    if "/" not in text:
        return text
    try:
        interface = ipaddress.ip_interface(text.strip())
    except ValueError:
        return text
    if interface.network.prefixlen == interface.max_prefixlen:
        return str(interface.ip)
    return text


def context_rows(entry: BaseLogEntry) -> tuple[ContextRow, ...]:
    """Return the entry's context as labelled rows (none for no context, or one that could not be decoded).

    Args:
        entry: The log entry.

    Returns:
        The rows, known keys of the context type first, then the other keys
        by name.
    """
    context = entry.context
    if context is None or isinstance(context, UndecodableJSON):
        return ()  # the raw text is shown as stored, with a note
    if not isinstance(context, Mapping):
        return (_value_row(_("Value"), context),)
    known = KNOWN_KEYS.get(entry.context_type, {})
    rows: list[ContextRow] = []
    for key, label in known.items():
        if key in context:
            row = _known_row(entry.context_type, key, str(label), context[key])
            if row is not None:
                rows.append(row)
    # By name: jsonb keeps keys ordered by length, an order nobody reads by.
    others = sorted((key for key in context if key not in known), key=str)
    for key in others[:MAX_ROWS]:
        rows.append(_value_row(str(key), context[key]))
    if len(others) > MAX_ROWS:
        rest = len(others) - MAX_ROWS
        rows.append(
            ContextRow(
                label=_("More"),
                text=ngettext(
                    "%(count)d more key (see the raw context)", "%(count)d more keys (see the raw context)", rest
                )
                % {"count": rest},
                kind="empty",
            )
        )
    return tuple(rows)


def _known_row(context_type: str, key: str, label: str, value: Any) -> ContextRow | None:
    """Return the row of a key the context type names (None to leave it out: no arguments, no options given)."""
    if key in ADDRESS_KEYS and value is not None:
        return ContextRow(label=label, text=_cut(display_address(value)))
    if context_type == HTTP_REQUEST and key == "query_params" and isinstance(value, Mapping):
        if not value:
            return None
        items = [(str(name), one_line(each)) for name, values in _by_name(value) for each in _as_list(values)]
        return _items_row(label, items)
    if context_type == HTTP_REQUEST and key == "truncated" and isinstance(value, list):
        labels = {name: str(label) for name, label in KNOWN_KEYS[HTTP_REQUEST].items()}
        cut = ", ".join(labels.get(one_line(name), one_line(name)) for name in value)
        return ContextRow(label=label, text=_cut(cut))
    if context_type == MANAGEMENT_COMMAND and key == "args" and isinstance(value, list):
        if not value:
            return None
        return ContextRow(label=label, text=_cut(" ".join(one_line(arg) for arg in value)))
    if context_type == MANAGEMENT_COMMAND and key == "kwargs" and isinstance(value, Mapping):
        # Only the options given: argparse fills every other one with None or False.
        given = [
            (str(name), "" if option is True else one_line(option))
            for name, option in _by_name(value)
            if name not in COMMON_COMMAND_OPTIONS and option is not None and option is not False
        ]
        return _items_row(label, given) if given else None
    return _value_row(label, value)


def _value_row(label: str, value: Any) -> ContextRow:
    """Return a row of one value of any shape: scalars as text, arrays and objects as compact JSON."""
    if value is None or value == "":
        return ContextRow(label=label, kind="empty")
    kind = "json" if isinstance(value, Mapping | list) else "text"
    return ContextRow(label=label, text=_cut(one_line(value)), kind=kind)


def _items_row(label: str, items: list[tuple[str, str]]) -> ContextRow:
    return ContextRow(
        label=label,
        items=tuple((_cut(key), _cut(value)) for key, value in items[:MAX_ROWS]),
        more=max(len(items) - MAX_ROWS, 0),
    )


def _by_name(mapping: Mapping[Any, Any]) -> list[tuple[Any, Any]]:
    """The items of a mapping sorted by key (jsonb orders keys by length); a key's values keep their order."""
    return sorted(mapping.items(), key=lambda item: str(item[0]))


def _as_list(values: Any) -> list[Any]:
    """A query parameter's values: a list as the middleware records them, or one value of another shape."""
    return values if isinstance(values, list) else [values]


def _cut(text: str) -> str:
    """Cut a value at :data:`MAX_VALUE_LENGTH` characters (a path may be 2,000; raw SQL may write anything)."""
    if len(text) <= MAX_VALUE_LENGTH:
        return text
    return f"{text[:MAX_VALUE_LENGTH]}…"
