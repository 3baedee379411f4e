"""Inline word diffs of two texts: pure functions returning frozen dataclasses.

:func:`word_diff` splits both texts into words, runs of whitespace and
punctuation marks and returns what was kept, removed and added, in order.
:func:`spaced_segments` tells a template where a removal and the insertion
right after it need a space between them, so "lemon" replaced by "ripe peach"
reads "~~lemon~~ ripe peach", not "~~lemon~~ripe peach".
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

_TOKENS = re.compile(r"\s+|\w+|[^\w\s]")

TextOp = Literal["equal", "delete", "insert"]


@dataclass(frozen=True)
class TextSegment:
    """One run of an inline word diff: text kept, removed or added."""

    op: TextOp
    text: str


def word_diff(old: str, new: str, *, max_tokens: int = 4_000) -> tuple[TextSegment, ...] | None:
    """Return an inline word-level diff of two texts.

    Words, runs of whitespace and punctuation marks are the units, so the diff
    reads like prose and keeps line breaks. Joining the ``equal`` and
    ``delete`` segments gives ``old`` back; ``equal`` and ``insert`` give
    ``new``.

    Args:
        old: The text before.
        new: The text after.
        max_tokens: Give up (return None) above this many units per side,
            since the matching is quadratic in the worst case.

    Returns:
        The segments, adjacent ones of the same kind merged; None if the texts
        are too long to compare.
    """
    a, b = _TOKENS.findall(old), _TOKENS.findall(new)
    if len(a) > max_tokens or len(b) > max_tokens:
        return None
    segments: list[TextSegment] = []

    def add(op: TextOp, tokens: Sequence[str]) -> None:
        text = "".join(tokens)
        if not text:
            return
        if segments and segments[-1].op == op:
            segments[-1] = TextSegment(op, segments[-1].text + text)
        else:
            segments.append(TextSegment(op, text))

    # autojunk off: it treats frequent words ("the", spaces) as noise in long texts.
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            add("equal", a[i1:i2])
        else:
            add("delete", a[i1:i2])
            add("insert", b[j1:j2])
    return tuple(segments)


def spaced_segments(segments: Sequence[TextSegment]) -> tuple[tuple[TextSegment, bool], ...]:
    """Pair each segment with whether a space must be shown before it.

    A replaced run is a removal followed directly by an insertion; shown as
    struck and highlighted text they would touch and read as one word. The
    space is for display only (the segments still join to the two texts), so
    it is added only where neither side already has whitespace at the seam.

    Args:
        segments: A word diff, as :func:`word_diff` returns it.

    Returns:
        ``(segment, gap_before)`` pairs in order.
    """
    pairs: list[tuple[TextSegment, bool]] = []
    previous: TextSegment | None = None
    for segment in segments:
        gap = (
            previous is not None
            and previous.op == "delete"
            and segment.op == "insert"
            and not previous.text[-1:].isspace()
            and not segment.text[:1].isspace()
        )
        pairs.append((segment, gap))
        previous = segment
    return tuple(pairs)
