r"""Turn arbitrary Python values (command options, request data, contexts) into JSON PostgreSQL stores.

PostgreSQL's ``text`` and ``jsonb`` cannot hold every Python string: a NUL
character (``"\x00"``, ``%00`` in a URL) and lone surrogates (undecodable
bytes in ``sys.argv``) are refused, and a refused value would fail the write
it is meant to describe. They are replaced with U+FFFD (the Unicode
replacement character) instead, everywhere a context value is built.
"""

from __future__ import annotations

import datetime
import decimal
import math
import os
import re
import uuid
from collections.abc import Mapping
from typing import Any

JSONValue = None | bool | int | float | str | list["JSONValue"] | dict[str, "JSONValue"]

#: What characters PostgreSQL cannot store are replaced with.
REPLACEMENT_CHARACTER = "\ufffd"

#: Deepest nesting of lists and dicts kept in a context value.
MAX_DEPTH = 32

#: Marks a value cut short by :func:`jsonable` (lenient mode).
CYCLE_MARKER = "<cycle>"
DEPTH_MARKER = "<nested too deep>"

_UNSTORABLE = re.compile(r"[\x00\ud800-\udfff]")


def clean_text(text: str) -> str:
    """Return ``text`` with NUL characters and lone surrogates replaced by U+FFFD.

    Args:
        text: Any string.

    Returns:
        A string PostgreSQL ``text`` and ``jsonb`` accept.
    """
    return _UNSTORABLE.sub(REPLACEMENT_CHARACTER, text)


def jsonable(value: Any, *, strict: bool = False) -> JSONValue:
    """Convert ``value`` to something ``json.dumps`` accepts and PostgreSQL stores.

    Dates and times become ISO strings, decimals and UUIDs strings, paths their
    text, files their name, sets and tuples lists; anything else its ``str()``.
    NaN and infinite floats become strings, since JSON has no such numbers.
    Strings (keys included) go through :func:`clean_text`.

    Args:
        value: Any value.
        strict: Raise ``ValueError`` for a value that refers to itself or is
            nested deeper than :data:`MAX_DEPTH`; otherwise replace the
            offending part with :data:`CYCLE_MARKER` / :data:`DEPTH_MARKER`.

    Returns:
        A JSON-serialisable value.

    Raises:
        ValueError: In strict mode, for a self-referencing or too deeply
            nested value.
    """
    try:
        return _convert(value, strict, set(), 0)
    except _Refused as refused:
        where = "value" + "".join(f"[{key!r}]" for key in reversed(refused.path))
        raise ValueError(f"{where} {refused.problem}") from None


class _Refused(Exception):  # noqa: N818  # internal: becomes the ValueError jsonable() raises
    """A strict refusal on its way up; each level adds its key, so the happy path builds no paths."""

    def __init__(self, problem: str) -> None:
        self.problem = problem
        self.path: list[Any] = []


def _convert(value: Any, strict: bool, active: set[int], depth: int) -> JSONValue:
    kind = type(value)
    # The common types first, by exact type: isinstance() against ABCs is slow.
    if kind is str:
        return clean_text(value)
    if value is None or kind is int or kind is bool:
        return value
    if kind is dict or kind is list or isinstance(value, Mapping | list | tuple | set | frozenset):
        return _container(value, strict, active, depth)
    if isinstance(value, bool | int):
        return value  # subclasses of int
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    return clean_text(_scalar_text(value))


def _container(value: Any, strict: bool, active: set[int], depth: int) -> JSONValue:
    if id(value) in active:
        if strict:
            raise _Refused("refers to itself: a context value must be a tree, not a cycle.")
        return CYCLE_MARKER
    if depth >= MAX_DEPTH:
        if strict:
            raise _Refused(f"is nested more than {MAX_DEPTH} levels deep.")
        return DEPTH_MARKER
    active.add(id(value))
    key: Any = None
    try:
        if isinstance(value, Mapping):
            result: dict[str, JSONValue] = {}
            for key, item in value.items():
                result[clean_text(key if type(key) is str else _text(key))] = _convert(item, strict, active, depth + 1)
            return result
        items = sorted(value, key=repr) if isinstance(value, set | frozenset) else value
        converted: list[JSONValue] = []
        for key, item in enumerate(items):  # noqa: B007  # key names the place of a refusal (except below)
            converted.append(_convert(item, strict, active, depth + 1))
        return converted
    except _Refused as refused:
        refused.path.append(key)
        raise
    finally:
        active.discard(id(value))


def _scalar_text(value: Any) -> str:
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return str(value)
    if isinstance(value, decimal.Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, os.PathLike):
        path = os.fspath(value)
        if isinstance(path, str):
            return path
        value = path
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    name = getattr(value, "name", None)
    if isinstance(name, str) and hasattr(value, "read"):
        return name  # an open file: its name says more than its repr
    return _text(value)


def _text(value: Any) -> str:
    try:
        return str(value)
    except Exception:  # noqa: BLE001  # a broken __str__ must not lose the audit record
        return f"<unprintable {type(value).__name__}>"
