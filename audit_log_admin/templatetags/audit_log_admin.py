"""Template tags of the log changelist: a date hierarchy and a paginator that do not scan the log."""

from __future__ import annotations

import calendar
import datetime
from typing import Any

from django import template
from django.contrib.admin.templatetags.admin_list import pagination, search_form
from django.contrib.admin.views.main import ChangeList
from django.db.models import Q, Subquery
from django.utils import formats, timezone
from django.utils.text import capfirst
from django.utils.translation import gettext as _

register = template.Library()


def _int(value: Any) -> int | None:
    if isinstance(value, list):
        value = value[-1] if value else None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _bounds(cl: ChangeList) -> tuple[datetime.datetime, datetime.datetime] | None:
    """Return the times of the first and last entry by id: primary-key index probes, in one query.

    Entries are written in time order, so the lowest and highest ids carry the
    earliest and latest times (give or take concurrent transactions).
    """
    root = cl.root_queryset.order_by()
    lowest, highest = root.order_by("pk").values("pk")[:1], root.order_by("-pk").values("pk")[:1]
    # One plain SELECT (a UNION would start with "(", which the core takes for a possible write).
    by_pk = root.filter(Q(pk=Subquery(lowest)) | Q(pk=Subquery(highest)))
    times: list[datetime.datetime] = list(by_pk.values_list(cl.date_hierarchy, flat=True))
    if not times:
        return None
    first, last = min(times), max(times)
    if timezone.is_aware(first):
        first, last = timezone.localtime(first), timezone.localtime(last)
    return first, last


@register.inclusion_tag("admin/date_hierarchy.html")
def audit_log_date_hierarchy(cl: ChangeList) -> dict[str, Any]:
    """Render a date hierarchy like the admin's, without its scans of the whole log.

    Django's date hierarchy finds the years, months and days that have entries
    with queries that read every row (``Min``/``Max`` and ``dates()``), which
    take seconds per page on a large log. This one finds the first and last
    entry by primary key and lists every year, month or day between them: a
    period without entries just shows an empty list.
    """
    if not cl.date_hierarchy:
        return {"show": False}
    name = cl.date_hierarchy
    year_field, month_field, day_field = f"{name}__year", f"{name}__month", f"{name}__day"
    year, month, day = (_int(cl.params.get(key)) for key in (year_field, month_field, day_field))
    bounds = _bounds(cl)
    if bounds is None:
        return {"show": False}
    first, last = (moment.date() for moment in bounds)

    def link(filters: dict[str, Any]) -> str:
        return cl.get_query_string(filters, [f"{name}__"])

    if year is None:
        if first.year != last.year:
            years = range(first.year, last.year + 1)
            return {
                "show": True,
                "back": None,
                "choices": [{"link": link({year_field: str(y)}), "title": str(y)} for y in years],
            }
        year = first.year
        if first.month == last.month:
            month = first.month
    if month is None:
        months = [m for m in range(1, 13) if (first.year, first.month) <= (year, m) <= (last.year, last.month)]
        return {
            "show": True,
            "back": {"link": link({}), "title": _("All dates")},
            "choices": [
                {
                    "link": link({year_field: year, month_field: m}),
                    "title": capfirst(formats.date_format(datetime.date(year, m, 1), "YEAR_MONTH_FORMAT")),
                }
                for m in months
            ],
        }
    if not (1 <= month <= 12) or not (datetime.MINYEAR <= year <= datetime.MAXYEAR):
        return {"show": False}
    if day is None:
        days = [datetime.date(year, month, d) for d in range(1, calendar.monthrange(year, month)[1] + 1)]
        return {
            "show": True,
            "back": {"link": link({year_field: year}), "title": str(year)},
            "choices": [
                {
                    "link": link({year_field: year, month_field: month, day_field: d.day}),
                    "title": capfirst(formats.date_format(d, "MONTH_DAY_FORMAT")),
                }
                for d in days
                if first <= d <= last
            ],
        }
    try:
        chosen = datetime.date(year, month, day)
    except ValueError:
        return {"show": False}
    return {
        "show": True,
        "back": {
            "link": link({year_field: year, month_field: month}),
            "title": capfirst(formats.date_format(chosen, "YEAR_MONTH_FORMAT")),
        },
        "choices": [{"title": capfirst(formats.date_format(chosen, "MONTH_DAY_FORMAT"))}],
    }


@register.inclusion_tag("audit_log_admin/pagination.html")
def audit_log_pagination(cl: ChangeList) -> dict[str, Any]:
    """Render the admin's paginator, saying "about" or "more than" when the count is not exact."""
    context = pagination(cl)
    context["count_is_estimate"] = getattr(cl.paginator, "count_is_estimate", False)
    context["count_is_lower_bound"] = getattr(cl.paginator, "count_is_lower_bound", False)
    return context


@register.inclusion_tag("admin/search_form.html")
def audit_log_search_form(cl: ChangeList) -> dict[str, Any]:
    """Render the admin's search form, without its result count when that count is not exact."""
    context = search_form(cl)
    paginator = cl.paginator
    if getattr(paginator, "count_is_estimate", False) or getattr(paginator, "count_is_lower_bound", False):
        context["show_result_count"] = False
    return context
