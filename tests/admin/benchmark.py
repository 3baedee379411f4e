"""Time the admin pages on a large log: ``python -m tests.admin.benchmark [--rows N] [--hot N]``.

Fills a throwaway test database's log with ``--rows`` entries (default
1,000,000) of which ``--hot`` (default 10,000) belong to one invoice, runs
VACUUM ANALYZE, then requests each page ``--rounds`` times as a superuser and as
a staff user who may view the log and every model but ``Customer`` (whose
entries, 2% of the log, are hidden from them), and prints the median times and
the numbers of queries. It also times what Django's defaults would run instead
(a full ``COUNT(*)``, the date hierarchy's aggregates), for comparison. Uses
``DATABASE_URL`` when set.
"""

from __future__ import annotations

import argparse
import datetime
import os
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

import django

django.setup()

from django.contrib.auth.models import Permission  # noqa: E402
from django.contrib.contenttypes.models import ContentType  # noqa: E402
from django.db.models import Max, Min  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import setup_databases, teardown_databases  # noqa: E402

from tests.admin.benchmark_fill import admin_pages, explain_slow, fill, measure, superuser_client  # noqa: E402
from tests.factories import UserFactory  # noqa: E402
from tests.testapp.models import AuditLogEntry, Customer, Invoice  # noqa: E402


def staff_client() -> Client:
    """Log in a staff user who may view the log and every model but ``Customer``."""
    staff = UserFactory(username="bench-staff", is_staff=True)
    hidden = ContentType.objects.get_for_model(Customer)
    staff.user_permissions.set(Permission.objects.filter(codename__startswith="view_").exclude(content_type=hidden))
    client = Client()
    client.force_login(staff)
    return client


def search_pages(log: str, hot: Invoice) -> dict[str, str]:
    """Return the searches to time: one word, an object id, and many words that each read the whole log.

    A search ANDs its words, and PostgreSQL stops at the first word a row does
    not match: words every entry matches, then one that matches none, make it
    test every word against every row (the worst case).
    """
    every, none = "invoice", "no-such-word"  # every entry's context has "/admin/testapp/invoice/"

    def url(words: list[str], **params: str) -> str:
        return f"{log}?{urlencode({'q': ' '.join(words), **params})}"

    day = {"at_after": "2025-06-01T00:00", "at_before": "2025-06-02T00:00"}
    month = {"at__year": "2025", "at__month": "6"}
    return {
        "search, 1 word (a path)": url(["/admin/testapp/invoice/7/change/"]),
        "search, an object id": url([str(hot.pk)]),
        "search, 5 words": url([every] * 4 + [none]),
        "search, 200 words": url([every] * 199 + [none]),
        "search, 1 word, one day": url(["/admin/testapp/invoice/7/change/"], **day),
        "search, 5 words, one day": url([every] * 4 + [none], **day),
        "search, 5 words, one month": url([every] * 4 + [none], **month),
    }


def time_searches(client: Client, log: str, hot: Invoice, rounds: int) -> None:
    """Time each search of :func:`search_pages` (median of ``rounds``) and say what the page answered."""
    notes = {
        b"Not searched": "refused: narrow the list first",
        b"Only the first": "first words only",
        b"took longer than": "stopped by the statement timeout",
    }
    print(f"\n{'search (median)':<34} {'ms':>10} {'queries':>8}  page says")
    for name, url in search_pages(log, hot).items():
        responses: list[Any] = []
        seconds, queries = measure(lambda url=url, responses=responses: responses.append(client.get(url)), rounds)
        assert responses[-1].status_code == 200, url
        said = ", ".join(note for marker, note in notes.items() if marker in responses[-1].content) or "results"
        print(f"{name:<34} {seconds * 1000:>10.1f} {queries:>8}  {said}")


def main() -> None:
    """Fill the log, then time every page."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--hot", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--search-rounds", type=int, default=3, help="rounds of each search (as superuser)")
    parser.add_argument("--explain", action="store_true", help="print the plans of log queries slower than 20 ms")
    options = parser.parse_args()

    old_config = setup_databases(verbosity=0, interactive=False, aliases={"default"})
    try:
        started = time.perf_counter()
        hot, middle_id = fill(options.rows, options.hot)
        total = AuditLogEntry.objects.count()
        print(f"log: {total:,} entries ({time.perf_counter() - started:.0f} s to fill), hot invoice: {options.hot:,}")
        client = superuser_client()
        entry = AuditLogEntry.objects.filter(object_id=str(hot.pk)).order_by("-id").first()
        assert entry is not None
        log = "/admin/testapp/auditlogentry/"
        pages = admin_pages(hot, middle_id, entry, datetime.date(2025, 6, 1))
        clients = {"superuser": client, "staff": staff_client()}
        for each in clients.values():
            for url in pages.values():  # warm caches (content types, permissions, templates)
                assert each.get(url).status_code == 200, url
        header = "".join(f" {who + ' ms':>14} {'queries':>8}" for who in clients)
        print(f"{'page (median)':<34}{header}")
        for name, url in pages.items():
            row = ""
            for each in clients.values():
                seconds, queries = measure(lambda url=url, each=each: each.get(url), options.rounds)
                row += f" {seconds * 1000:>14.1f} {queries:>8}"
            print(f"{name:<34}{row}")
            if options.explain:
                for who, each in clients.items():
                    print(f"  as {who}:")
                    explain_slow(each, url)
        time_searches(client, log, hot, options.search_rounds)
        print("\nWhat Django's defaults would add per page:")
        checks: dict[str, Callable[[], Any]] = {
            "COUNT(*) of the log": lambda: AuditLogEntry.objects.count(),
            "date hierarchy Min/Max": lambda: AuditLogEntry.objects.aggregate(Min("at"), Max("at")),
            "date hierarchy years": lambda: list(AuditLogEntry.objects.datetimes("at", "year")),
        }
        for name, action in checks.items():
            seconds, queries = measure(action, options.rounds)
            print(f"{name:<34} {seconds * 1000:>10.1f} {queries:>8}")
    finally:
        teardown_databases(old_config, verbosity=0)


if __name__ == "__main__":
    main()
