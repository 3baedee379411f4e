"""Compare two runs of Django's test suite and describe what differs."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: What a test that one run never reported (say its class failed to set up) counts as.
NOT_RUN = "not run"

_FRAME = re.compile(r'^  File "(?P<path>[^"]+)", line (?P<line>\d+), in (?P<function>.+)$')
_QUOTED = re.compile(r"\"[^\"]*\"|'[^']*'")
_NUMBER = re.compile(r"\d+")

Outcomes = Mapping[str, Mapping[str, str]]


@dataclass(frozen=True)
class Difference:
    """One test whose outcome differs between the stock and the audited run.

    Attributes:
        test: The test id (``module.Class.test_name``).
        stock: Its outcome with the stock backend (``ok``, ``FAIL``, ...).
        audited: Its outcome with every table audited.
        detail: The traceback (or skip reason) of the audited run, or of the
            stock run when the audited run has none.
    """

    test: str
    stock: str
    audited: str
    detail: str

    @property
    def cause(self) -> str:
        """A key that groups differences with the same exception: its first line, names and numbers blanked."""
        if self.audited == NOT_RUN:
            return "not run in the audited run"
        exception = excerpt(self.detail).exception
        first = exception[0] if exception else f"{self.stock} -> {self.audited}"
        return _NUMBER.sub("N", _QUOTED.sub("'…'", first))[:160]


@dataclass(frozen=True)
class Excerpt:
    """The part of a traceback that says what went wrong.

    Attributes:
        where: ``path:line in function`` of the innermost frame in audit_log
            or this suite, else of the innermost frame; "" without a traceback.
        exception: The final exception's lines (type and message).
    """

    where: str
    exception: list[str]


def excerpt(detail: str, max_lines: int = 6, width: int = 220) -> Excerpt:
    """Pick the telling lines out of a formatted traceback.

    Args:
        detail: A traceback as ``traceback.format_exception`` writes it, or a skip reason.
        max_lines: At most this many lines of the exception message.
        width: Cut each line to this many characters.

    Returns:
        The excerpt.
    """
    # An error while handling another (a cleanup in ``finally``) is a
    # consequence: the first one says what went wrong.
    detail = detail.split("\nDuring handling of the above exception, another exception occurred:\n")[0]
    lines = detail.rstrip("\n").splitlines()
    frames = [(index, match) for index, line in enumerate(lines) if (match := _FRAME.match(line))]
    if not frames:
        return Excerpt("", [line[:width] for line in lines[:max_lines]])
    last_index = frames[-1][0]
    # The frames of the last chained exception; audit_log's own frame, if any, says the most.
    chain_start = max((i for i, line in enumerate(lines[:last_index]) if line.startswith("Traceback")), default=0)
    chain = [match for index, match in frames if index >= chain_start]
    ours = [m for m in chain if "/audit_log/" in m["path"] or "/django_suite/" in m["path"]]
    frame = (ours or chain)[-1]
    where = f"{frame['path']}:{frame['line']} in {frame['function']}"
    # After the last frame come its source line (indented) and the exception.
    message = [line for line in lines[last_index + 1 :] if line.strip() and not line.startswith("    ")]
    return Excerpt(where, [line[:width] for line in message[:max_lines]])


def compare(stock: Outcomes, audited: Outcomes) -> list[Difference]:
    """Return the tests whose outcome differs, sorted by test id.

    Args:
        stock: ``{test id: {"outcome", "detail"}}`` of the stock run.
        audited: The same for the audited run.

    Returns:
        One difference per test that has another outcome, or ran in one run only.
    """
    differences = []
    for test in sorted(stock.keys() | audited.keys()):
        before, after = stock.get(test, {}), audited.get(test, {})
        before_outcome, after_outcome = before.get("outcome", NOT_RUN), after.get("outcome", NOT_RUN)
        if before_outcome != after_outcome:
            detail = after.get("detail") or before.get("detail") or ""
            differences.append(Difference(test, before_outcome, after_outcome, detail))
    return differences


def totals(outcomes: Outcomes) -> str:
    """Summarise a run: ``1,234 tests: 1,200 ok, 30 skipped, ...``."""
    counts = Counter(result["outcome"] for result in outcomes.values())
    parts = [f"{count:,} {outcome}" for outcome, count in counts.most_common()]
    return f"{len(outcomes):,} tests: " + (", ".join(parts) or "none")


def report(differences: list[Difference]) -> list[str]:
    """Format the differences grouped by cause, the largest group first.

    Args:
        differences: From :func:`compare`.

    Returns:
        Lines to print.
    """
    groups: dict[str, list[Difference]] = {}
    for difference in differences:
        groups.setdefault(difference.cause, []).append(difference)
    lines = []
    for cause, members in sorted(groups.items(), key=lambda item: (-len(item[1]), item[0])):
        lines.append(f"\n{len(members)} x {cause}")
        shown = excerpt(members[0].detail)
        if members[0].audited != NOT_RUN:
            if shown.where:
                lines.append(f"    at {shown.where}")
            lines.extend(f"    | {line}" for line in shown.exception)
        lines.extend(f"  {member.stock:>10} -> {member.audited:<10} {member.test}" for member in members)
    return lines


def database_summary(databases: list[dict[str, Any]]) -> tuple[str, int, int]:
    """Sum what the triggers did over a run's test databases.

    Args:
        databases: The ``databases`` list of a results file.

    Returns:
        A line to print, the audit triggers left at the end and the log
        entries numbered (written, rolled back or not).
    """
    errors = [f"{database['name']}: {database['error']}" for database in databases if "error" in database]
    counted = [database for database in databases if "error" not in database]
    triggers = sum(database["triggers"] for database in counted)
    tables = sum(database["tables"] for database in counted)
    rows = sum(database["rows"] for database in counted)
    numbered = sum(database["numbered"] for database in counted)
    line = (
        f"{triggers:,} audit triggers on {tables:,} tables at the end, {numbered:,} log entries written "
        f"({rows:,} kept, the rest rolled back with their tests) in {len(counted)} test databases"
    )
    if errors:
        line += "; not counted: " + "; ".join(errors)
    return line, triggers, numbered
