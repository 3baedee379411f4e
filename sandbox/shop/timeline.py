"""The demo's days: each story step happens on a simulated day, and seed_demo backdates its entries to it.

PostgreSQL stamps every log entry with ``statement_timestamp()``, which no
client can set, so the whole story really runs within a minute. To give the
log a few days of history, each step names its day and office hour
(:func:`on`); while it runs, the shop's own clock (:func:`now`, which the
admin's "mark shipped" action reads) shows that moment, and the forms get
dates from it. When the story is told, :meth:`Timeline.backdate` moves each
past step's entries to its moment in one UPDATE inside
``log_maintenance()``: the append-only guard lets it through, and the log
records that it happened (an UPDATE entry of the log table itself, in
seed_demo's context). Today's steps keep the time they really ran at, so
every moved entry is older than every entry that was not, and ``at`` grows
with ``id`` throughout.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TypeVar

from django.db.models import Case, DateTimeField, DurationField, F, Max, Q, Value, When
from django.utils import timezone

from audit_log.guard import log_maintenance
from audit_log.loading import get_log_entry_model

Step = TypeVar("Step", bound=Callable[..., None])

#: The simulated moment of the step being told (None: the real time).
_simulated: ContextVar[datetime.datetime | None] = ContextVar("sandbox_shop_simulated_now", default=None)


def now() -> datetime.datetime:
    """Return the shop's time: the simulated moment while seed_demo tells a past step, else the real time."""
    return _simulated.get() or timezone.now().replace(microsecond=0)


def today() -> datetime.date:
    """Return the shop's date in the current time zone (see :func:`now`)."""
    return timezone.localdate(now())


@dataclass(frozen=True)
class StepTime:
    """When a step happens: ``days_ago`` days before today, at ``time`` (local). Today: when it really runs."""

    days_ago: int
    time: datetime.time


def on(days_ago: int, time: str = "00:00") -> Callable[[Step], Step]:
    """Mark a story step as happening ``days_ago`` days ago at ``time`` ("HH:MM", local time)."""

    def mark(step: Step) -> Step:
        step.when = StepTime(days_ago, datetime.time.fromisoformat(time))  # type: ignore[attr-defined]  # read by Timeline
        return step

    return mark


@dataclass(frozen=True)
class Span:
    """The entries one past step wrote (ids ``low`` < id <= ``high``) and the moment they belong to."""

    low: int
    high: int
    moment: datetime.datetime


class Timeline:
    """Run story steps on their days and backdate their entries afterwards.

    Args:
        today: The story's last day (default: today in the current time zone).
    """

    def __init__(self, today: datetime.date | None = None) -> None:
        self.today = today or timezone.localdate()
        self.spans: list[Span] = []
        self._last: datetime.datetime | None = None
        self._today = False  # a step of today was told: every later one must be today's too

    def moment(self, when: StepTime) -> datetime.datetime | None:
        """Return the aware moment of ``when``, or None for today (its steps run at the real time).

        Raises:
            ValueError: If steps are not in the order of their moments (``at`` would not grow with ``id``).
        """
        if when.days_ago <= 0:
            self._today = True
            return None
        day = self.today - datetime.timedelta(days=when.days_ago)
        moment = timezone.make_aware(datetime.datetime.combine(day, when.time))
        if self._today or (self._last is not None and moment <= self._last):
            raise ValueError(f"The story step at {moment} comes after a later one: keep the steps in order.")
        self._last = moment
        return moment

    @contextmanager
    def step(self, moment: datetime.datetime | None) -> Iterator[None]:
        """Run a step with the shop's clock at ``moment``; remember which entries it wrote for :meth:`backdate`."""
        if moment is None:
            yield
            return
        low = self._last_id()
        token = _simulated.set(moment)
        try:
            yield
        finally:
            _simulated.reset(token)
        high = self._last_id()
        if high > low:
            self.spans.append(Span(low, high, moment))

    def backdate(self) -> int:
        """Move each past step's entries to its moment, in one UPDATE the log records; return how many moved.

        Within a step the entries keep their distance from its first entry
        (milliseconds), so their order by ``at`` stays their order by ``id``.
        """
        if not self.spans:
            return 0
        log = get_log_entry_model()._default_manager
        rows = dict(log.filter(id__gt=self.spans[0].low, id__lte=self.spans[-1].high).values_list("id", "at"))
        cases = []
        for span in self.spans:
            first = min(at for pk, at in rows.items() if span.low < pk <= span.high)
            shift = Value(span.moment - first, output_field=DurationField())
            cases.append(When(Q(id__gt=span.low, id__lte=span.high), then=F("at") + shift))
        with log_maintenance():
            return log.filter(id__gt=self.spans[0].low, id__lte=self.spans[-1].high).update(
                at=Case(*cases, default=F("at"), output_field=DateTimeField())
            )

    @staticmethod
    def _last_id() -> int:
        return get_log_entry_model()._default_manager.aggregate(last=Max("id"))["last"] or 0
