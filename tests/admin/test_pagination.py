from django.test import RequestFactory

from audit_log_admin.pagination import EstimatedCountPaginator, capped_count, keyset_page
from tests.admin.factories import LogEntryFactory
from tests.testapp.models import AuditLogEntry


def test_capped_count_stops_at_the_limit(db):
    LogEntryFactory.create_batch(5)
    assert capped_count(AuditLogEntry.objects.all(), 10) == 5
    assert capped_count(AuditLogEntry.objects.all(), 3) == 4


def test_estimated_count_paginator_is_exact_below_the_limit(db, settings):
    LogEntryFactory.create_batch(5)
    paginator = EstimatedCountPaginator(AuditLogEntry.objects.all(), 2)
    assert paginator.count == 5
    assert not paginator.count_is_estimate
    assert not paginator.count_is_lower_bound
    assert paginator.num_pages == 3


def test_estimated_count_paginator_filtered_above_the_limit_is_a_lower_bound(db, settings):
    settings.AUDIT_LOG_ADMIN_EXACT_COUNT_LIMIT = 2
    LogEntryFactory.create_batch(5, action="DELETE")
    paginator = EstimatedCountPaginator(AuditLogEntry.objects.filter(action="DELETE"), 2)
    assert paginator.count == 3
    assert paginator.count_is_lower_bound


def test_estimated_count_paginator_unanalyzed_table_falls_back_to_a_lower_bound(db, settings):
    settings.AUDIT_LOG_ADMIN_EXACT_COUNT_LIMIT = 2
    LogEntryFactory.create_batch(5)
    paginator = EstimatedCountPaginator(AuditLogEntry.objects.all(), 2)
    assert paginator.count >= 3
    assert paginator.count_is_estimate or paginator.count_is_lower_bound


def test_estimated_count_paginator_counts_plain_lists():
    assert EstimatedCountPaginator([1, 2, 3], 2).count == 3


def test_keyset_page_first_page_has_no_newer_link(db):
    entries = LogEntryFactory.create_batch(3)
    page = keyset_page(AuditLogEntry.objects.all(), RequestFactory().get("/"), 2)
    assert [e.pk for e in page.items] == [entries[2].pk, entries[1].pk]
    assert page.older_url == f"?before={entries[1].pk}"
    assert page.has_other_pages
    assert page.newer_url == page.newest_url == ""


def test_keyset_page_of_an_empty_list(db):
    page = keyset_page(AuditLogEntry.objects.all(), RequestFactory().get("/", {"before": "10"}), 2)
    assert page.items == []
    assert not page.has_other_pages


def test_keyset_page_past_the_oldest_entry_links_back_to_the_newest(db):
    LogEntryFactory.create_batch(2)
    first = AuditLogEntry.objects.order_by("id").first()
    page = keyset_page(AuditLogEntry.objects.all(), RequestFactory().get("/", {"before": first.pk}), 2)
    assert page.items == []
    assert page.newest_url == "?"
    assert page.newer_url == ""
