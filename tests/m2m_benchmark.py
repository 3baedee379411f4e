"""What auditing a many-to-many table costs: ``python -m tests.m2m_benchmark [--rounds N]``.

Creates a throwaway database (``<NAME>_m2m_benchmark``), then times
``article.tags.add(tag)`` and ``article.tags.remove(tag)`` (one link per call,
autocommit, inside one ``audit_context``), 200 pairs per block, alternating
blocks with the link table's triggers disabled (``ALTER TABLE ... DISABLE
TRIGGER USER``: the same table, unaudited) and enabled, and prints each
round's microseconds per call and the median audited/plain ratio. Not part of
the test suite.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

import django

django.setup()

from django.db import connection  # noqa: E402

from audit_log.context import audit_context  # noqa: E402
from tests.benchmark_db import create_database, drop_database  # noqa: E402
from tests.testapp.models import Article, Tag  # noqa: E402

PAIRS = 200


def main() -> None:
    """Time add/remove with the link table's triggers off and on, side by side."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9, help="rounds of one plain and one audited block (default 9)")
    options = parser.parse_args()
    old_config = create_database("m2m_benchmark")
    try:
        tags = [Tag.objects.create(name=f"tag {n}") for n in range(10)]
        article = Article.objects.create(title="Benchmark")

        def block(pairs: int = PAIRS) -> float:
            start = time.perf_counter()
            for n in range(pairs):
                article.tags.add(tags[n % len(tags)])
                article.tags.remove(tags[n % len(tags)])
            return (time.perf_counter() - start) / (2 * pairs) * 1e6

        def triggers(on: bool) -> None:
            with connection.cursor() as cursor:
                cursor.execute(f"ALTER TABLE testapp_article_tags {'ENABLE' if on else 'DISABLE'} TRIGGER USER")

        ratios = []
        with audit_context("benchmark"):
            block(50)  # warm: plans, the context table
            for number in range(options.rounds):
                triggers(False)
                plain = block()
                triggers(True)
                audited = block()
                ratios.append(audited / plain)
                print(f"round {number + 1}: plain {plain:.0f} us/call, audited {audited:.0f} us/call", flush=True)
        print(f"median audited/plain: {statistics.median(ratios):.2f}")
    finally:
        drop_database(old_config)


if __name__ == "__main__":
    main()
