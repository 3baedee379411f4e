"""Turn arbitrary Python values (command options, request data) into JSON-safe ones."""

from __future__ import annotations

import datetime
import decimal
import math
import os
import uuid
from collections.abc import Mapping
from typing import Any

JSONValue = None | bool | int | float | str | list["JSONValue"] | dict[str, "JSONValue"]


def jsonable(value: Any) -> JSONValue:
    """Convert ``value`` to something ``json.dumps`` accepts, never raising.

    Dates and times become ISO strings, decimals and UUIDs strings, paths their
    text, files their name, sets and tuples lists; anything else its ``str()``.
    NaN and infinite floats become strings, since JSON has no such numbers.

    Args:
        value: Any value.

    Returns:
        A JSON-serialisable value.
    """
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Mapping):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value, key=repr) if isinstance(value, set | frozenset) else value
        return [jsonable(item) for item in items]
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return str(value)
    if isinstance(value, decimal.Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
        if isinstance(value, str):
            return value
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    name = getattr(value, "name", None)
    if isinstance(name, str) and hasattr(value, "read"):
        return name  # an open file: its name says more than its repr
    try:
        return str(value)
    except Exception:  # noqa: BLE001  # a broken __str__ must not lose the audit record
        return f"<unprintable {type(value).__name__}>"
