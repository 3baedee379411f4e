"""Small pure helpers: JSON conversion and SQL constants."""

import datetime
import decimal
import io
import math
import pathlib
import uuid

import pytest

from audit_log.serialization import jsonable
from audit_log.triggers import sql_constant


class Unprintable:
    def __str__(self):
        raise RuntimeError("no")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        (True, True),
        (3, 3),
        (1.5, 1.5),
        (math.nan, "nan"),
        (math.inf, "inf"),
        ("text", "text"),
        (datetime.datetime(2026, 1, 2, 3, 4, 5), "2026-01-02T03:04:05"),
        (datetime.date(2026, 1, 2), "2026-01-02"),
        (datetime.time(3, 4), "03:04:00"),
        (datetime.timedelta(hours=1), "1:00:00"),
        (decimal.Decimal("1.10"), "1.10"),
        (uuid.UUID(int=5), "00000000-0000-0000-0000-000000000005"),
        (pathlib.Path("/tmp/x.csv"), "/tmp/x.csv"),
        (b"caf\xc3\xa9", "café"),
        ((1, [2, {3}]), [1, [2, [3]]]),
        ({1: {"a": decimal.Decimal(2)}}, {"1": {"a": "2"}}),
        (Unprintable(), "<unprintable Unprintable>"),
        (object, "<class 'object'>"),
    ],
)
def test_jsonable_converts_without_raising(value, expected):
    assert jsonable(value) == expected


def test_jsonable_names_open_files():
    buffer = io.StringIO()
    buffer.name = "report.txt"
    assert jsonable(buffer) == "report.txt"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        (True, "true"),
        (False, "false"),
        (7, "'7'"),
        (decimal.Decimal("1.5"), "'1.5'"),
        ("it's", "'it''s'"),
        (uuid.UUID(int=1), "'00000000-0000-0000-0000-000000000001'"),
        ({"a": [1]}, "'{\"a\": [1]}'::jsonb"),
        (datetime.date(2026, 1, 1), None),
    ],
)
def test_sql_constant_renders_field_defaults(value, expected):
    assert sql_constant(value) == expected
