"""JSON values as text, and which keys of a JSON object changed: pure functions.

:func:`json_diff` compares two JSON objects key by key, going into objects
nested in both, and names each key by its path (``dimensions.width``), so a
change of one key reads as that key, not as two whole documents.
:func:`pretty_json` and :func:`one_line` write decoded JSON back as text.

Everything here is bounded, whatever the database holds: no recursion deeper
than ``max_depth`` levels (values are compared and printed with stacks of
their own), and a comparison of more than ``max_keys`` keys gives up so the
caller can show the two documents as they are.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

KeyOp = Literal["added", "removed", "changed", "equal"]

# Keys that read unambiguously in a dotted path; any other key is written as a JSON string.
_PLAIN_KEY = re.compile(r"[^\W\d][\w-]*|\d+")


@dataclass(frozen=True)
class KeyChange:
    """One key of two compared JSON objects.

    Attributes:
        path: The keys from the top-level object down to this one.
        op: ``"added"`` (only in the new object), ``"removed"`` (only in the
            old one), ``"changed"`` or ``"equal"``.
        old: The value before; meaningful unless ``op`` is ``"added"``.
        new: The value after; meaningful unless ``op`` is ``"removed"``.
    """

    path: tuple[str, ...]
    op: KeyOp
    old: Any = None
    new: Any = None


def json_diff(old: Any, new: Any, *, max_keys: int = 500, max_depth: int = 6) -> tuple[KeyChange, ...] | None:
    """Compare two JSON objects key by key, going into objects nested in both.

    An object nested in both that differs is listed by its keys
    (``dimensions.width``); one that is the same is one ``"equal"`` key.
    Anything else that differs (a list, a scalar, an object on one side only)
    is one ``"changed"`` key with both values. Keys are listed alphabetically
    at each level. ``true`` and ``1`` differ; ``1`` and ``1.0`` are the same
    number, as in PostgreSQL's ``jsonb``.

    Args:
        old: The value before.
        new: The value after.
        max_keys: Give up (return None) above this many keys in all.
        max_depth: Objects nested deeper than this are compared as whole values.

    Returns:
        One item per key, or None if either value is no JSON object, the
        objects are too big to list, or no key differs.
    """
    if not (isinstance(old, Mapping) and isinstance(new, Mapping)):
        return None
    found: list[KeyChange] = []

    def compare(path: tuple[str, ...], a: Mapping[Any, Any], b: Mapping[Any, Any]) -> bool:
        # Recursion is bounded by max_depth; returns False once the key budget is spent.
        if len(found) + len(a) + len(b) > 2 * max_keys:
            return False
        for key in sorted(set(a) | set(b), key=str):
            here = (*path, str(key))
            if key not in b:
                found.append(KeyChange(here, "removed", old=a[key]))
            elif key not in a:
                found.append(KeyChange(here, "added", new=b[key]))
            elif same_json(a[key], b[key]):
                found.append(KeyChange(here, "equal", old=a[key], new=b[key]))
            elif isinstance(a[key], Mapping) and isinstance(b[key], Mapping) and len(here) < max_depth:
                if not compare(here, a[key], b[key]):
                    return False
            else:
                found.append(KeyChange(here, "changed", old=a[key], new=b[key]))
            if len(found) > max_keys:
                return False
        return True

    if not compare((), old, new) or all(change.op == "equal" for change in found):
        return None
    return tuple(found)


def same_json(a: Any, b: Any) -> bool:
    """Return True if two decoded JSON values are equal, without recursion.

    Unlike ``==``, ``true`` is not ``1`` and values nested thousands of levels
    deep are compared like any others.
    """
    stack = [(a, b)]
    while stack:
        x, y = stack.pop()
        if isinstance(x, Mapping):
            if not isinstance(y, Mapping) or x.keys() != y.keys():
                return False
            stack.extend((x[key], y[key]) for key in x)
        elif isinstance(x, list | tuple):
            if not isinstance(y, list | tuple) or len(x) != len(y):
                return False
            stack.extend(zip(x, y, strict=True))
        elif isinstance(y, Mapping | list | tuple):
            return False
        elif isinstance(x, bool) or isinstance(y, bool):
            if x is not y:
                return False
        elif x != y:
            return False
    return True


def json_path(path: tuple[str, ...]) -> str:
    """Write a key path as dotted text: ``dimensions.width``; odd keys as JSON strings (``a."b.c"``)."""
    return ".".join(json_path_parts(path))


def json_path_parts(path: tuple[str, ...]) -> tuple[str, ...]:
    """Return the keys of a path as :func:`json_path` writes them, each on its own."""
    return tuple(key if _PLAIN_KEY.fullmatch(key) else json.dumps(key, ensure_ascii=False) for key in path)


def pretty_json(value: Any, indent: int | None = 2, *, one_line_below: int = 32) -> str:
    """Pretty-print a decoded JSON value, with exact decimals written as numbers.

    Written with a stack of its own, not by recursion: a value nested as deep
    as the decoder allows is printed like any other.

    Args:
        value: The decoded value.
        indent: Spaces per level; None writes everything on one line.
        one_line_below: Levels deeper than this are written on one line, so
            the text of deeply nested data grows with its size, not with the
            square of its depth.

    Returns:
        The JSON text.
    """
    out: list[str] = []
    # Text to write, or a (value, level) still to be written; popped from the end.
    stack: list[str | tuple[Any, int]] = [(value, 0)]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            out.append(item)
            continue
        current, level = item
        if isinstance(current, Mapping | list | tuple) and current:
            if indent is None or level >= one_line_below:
                first, between, last = "", ", ", ""
            else:
                inner = "\n" + " " * indent * (level + 1)
                first, between, last = inner, "," + inner, "\n" + " " * indent * level
            if isinstance(current, Mapping):
                opening, closing = "{", "}"
                children = [(json.dumps(str(key), ensure_ascii=False) + ": ", child) for key, child in current.items()]
            else:
                opening, closing = "[", "]"
                children = [("", child) for child in current]
            work: list[str | tuple[Any, int]] = [opening + first]
            for index, (label, child) in enumerate(children):
                work.append((between if index else "") + label)
                work.append((child, level + 1))
            work.append(last + closing)
            stack.extend(reversed(work))
        elif isinstance(current, Mapping):
            out.append("{}")
        elif isinstance(current, list | tuple):
            out.append("[]")
        elif isinstance(current, Decimal):
            out.append(str(current))
        else:
            out.append(json.dumps(current, ensure_ascii=False, default=str))
    return "".join(out)


def one_line(value: Any) -> str:
    """Return a context value as one line of text: scalars as they are, arrays and objects as compact JSON."""
    if isinstance(value, Mapping | list | tuple):
        return pretty_json(value, indent=None)
    return str(value)
