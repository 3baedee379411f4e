"""Many-to-many links in the admin: a History tab shows them with the change they belong to; the log finds them."""

import re
from html import unescape

import pytest
from django.contrib.contenttypes.models import ContentType
from django.db import connection, transaction
from django.urls import reverse

from audit_log.context import audit_context
from audit_log_admin.diff import DiffFormatter
from audit_log_admin.links import LinkChange, group_entries, link_changes
from tests.admin.factories import LogEntryFactory
from tests.testapp.models import Article, AuditLogEntry, Tag

TAGS = "testapp_article_tags"

#: Each write outside ``atomic()`` its own transaction, as in production (not the test's one transaction).
separate_transactions = pytest.mark.django_db(transaction=True)


@pytest.fixture
def tags(db):
    return {name: Tag.objects.create(name=name) for name in ("light-roast", "single-origin", "decaf", "bestseller")}


@pytest.fixture
def article(user, tags):
    """An article created with one tag, in one transaction."""
    with audit_context("test", performed_by=user), transaction.atomic():
        article = Article.objects.create(title="Ethiopia")
        article.tags.add(tags["single-origin"])
    return article


def links_of(row):
    return [(link.added, link.value.text) for link in row.links]


def rows(item):
    """``{label: (old, new)}``, or for a many-to-many field ``{label: [(added, text), ...]}``, of a History row."""
    return {
        row.label: links_of(row) if row.links else (row.old and row.old.text, row.new and row.new.text)
        for row in item.diff.rows
    }


def text(response):
    """The page's text, tags removed and entities resolved, spaces collapsed."""
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", "", response.content.decode())))


def change_in_admin(client, article, **data):
    url = reverse("admin:testapp_article_change", args=[article.pk])
    form = {"title": article.title, "tags": [], "related": [], "readers": [], **data}
    response = client.post(url, form)
    assert response.status_code == 302, response.content.decode()[:2000]


# --- the History tab -----------------------------------------------------------------------


@separate_transactions
def test_history_shows_a_save_and_its_links_of_the_same_transaction_as_one_row(
    superuser_client, article, tags, history_url
):
    keep, add = tags["bestseller"], tags["light-roast"]  # single-origin goes
    article.tags.add(keep)
    change_in_admin(superuser_client, article, title="Ethiopia Yirgacheffe", tags=[keep.pk, add.pk])
    response = superuser_client.get(history_url(article))
    newest = response.context["entries"][0]
    assert newest.action == "UPDATE"
    assert newest.entry.table_name == "testapp_article"
    assert rows(newest) == {
        "Title": ("Ethiopia", "Ethiopia Yirgacheffe"),
        "Tags": [(True, "light-roast"), (False, "single-origin")],
    }
    assert [entry.table_name for entry in newest.links] == [TAGS, TAGS]
    assert {entry.transaction_id for entry in newest.links} == {newest.entry.transaction_id}
    assert "Tags + light-roast, \N{MINUS SIGN} single-origin" in text(response)
    tag_url = reverse("admin:testapp_tag_change", args=[add.pk])
    assert f'<a href="{tag_url}">light-roast</a>' in response.content.decode()


@separate_transactions
def test_history_shows_links_changed_alone_as_a_change_of_the_object(superuser_client, article, tags, history_url):
    article.tags.add(tags["decaf"], tags["bestseller"])  # one statement, two links, no own entry
    newest = superuser_client.get(history_url(article)).context["entries"][0]
    assert newest.action == "UPDATE"
    assert newest.get_action_display() == "Changed"
    assert rows(newest) == {"Tags": [(True, "bestseller"), (True, "decaf")]}  # by label
    assert newest.entry.table_name == TAGS


@separate_transactions
def test_history_shows_a_creation_with_its_links_and_a_deletion_with_the_links_it_removed(
    superuser_client, article, tags, history_url, user
):
    created = superuser_client.get(history_url(article)).context["entries"][-1]
    assert created.action == "INSERT"
    assert rows(created)["Tags"] == [(True, "single-origin")]
    assert rows(created)["Title"] == (None, "Ethiopia")
    key = article.pk
    with audit_context("test", performed_by=user):
        article.delete()  # Django removes the links first
    deleted_entries = AuditLogEntry.objects.filter(object_id=str(key)).order_by("-id")[:2]
    article.pk = key  # the History tab of a deleted object is reached through its entries
    formatter = DiffFormatter()
    formatter.prefetch(deleted_entries)
    [group] = group_entries(deleted_entries, formatter.is_link)
    assert group.action == "DELETE"
    diff = formatter.format_entries(group.entries)
    assert diff.action == "DELETE"
    assert [(row.label, links_of(row)) for row in diff.rows if row.links] == [("Tags", [(False, "single-origin")])]


@separate_transactions
def test_history_keeps_changes_of_other_transactions_apart(superuser_client, article, tags, history_url):
    article.title = "Ethiopia Guji"
    article.save()
    article.tags.add(tags["decaf"])  # autocommit: another transaction
    entries = superuser_client.get(history_url(article)).context["entries"]
    assert [(item.action, list(rows(item))) for item in entries] == [
        ("UPDATE", ["Tags"]),
        ("UPDATE", ["Title"]),
        ("INSERT", ["ID", "Title", "Tags"]),
    ]


@separate_transactions
def test_history_shows_links_to_deleted_objects_and_self_referential_links(
    superuser_client, article, tags, history_url
):
    other = Article.objects.create(title="Kenya")
    with transaction.atomic():
        article.related.add(other)
        article.tags.add(tags["decaf"])
    decaf = tags["decaf"].pk
    tags["decaf"].delete()  # removes its links too: a second row
    entries = superuser_client.get(history_url(article)).context["entries"]
    [removed, added] = entries[:2]
    assert rows(added) == {"Related": [(True, "Kenya")], "Tags": [(True, f"Tag {decaf} (deleted)")]}
    assert rows(removed) == {"Tags": [(False, f"Tag {decaf} (deleted)")]}


def test_history_escapes_link_labels(superuser_client, article, history_url):
    article.tags.add(Tag.objects.create(name="<script>alert(1)</script>"))
    content = superuser_client.get(history_url(article)).content.decode()
    assert "<script>alert(1)" not in content
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in content


@separate_transactions
@pytest.mark.parametrize("changes", [2, 60])
def test_history_with_links_runs_a_fixed_number_of_queries_per_page(
    superuser_client, article, history_url, django_assert_num_queries, changes
):
    many = Tag.objects.bulk_create(Tag(name=f"tag-{number}") for number in range(changes))
    for tag in many:
        with transaction.atomic():
            article.title = f"Ethiopia {tag.name}"
            article.save()
            article.tags.add(tag)
    url = history_url(article)
    superuser_client.get(url)  # warm the content-type cache
    # session, user, object, capped count, one page of entries (user joined), the tags of the page
    with django_assert_num_queries(6):
        response = superuser_client.get(url)
    assert all(rows(item).keys() == {"Title", "Tags"} for item in response.context["entries"][:-1])


@separate_transactions
def test_history_shows_a_link_moved_by_raw_sql_as_stored(superuser_client, article, tags, history_url):
    other = Article.objects.create(title="Kenya")
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {TAGS} SET article_id = %s WHERE article_id = %s", [other.pk, article.pk])
    newest = superuser_client.get(history_url(other)).context["entries"][0]
    [row] = newest.diff.rows
    assert row.label == "Tags"
    assert row.links == ()
    assert "not added or removed" in row.note
    assert f'"article_id": [\n    {article.pk},\n    {other.pk}\n  ]' in row.new.text


# --- the log -------------------------------------------------------------------------------


def test_changelist_summarizes_link_entries(superuser_client, article, tags, log_url):
    article.tags.remove(tags["single-origin"])
    response = superuser_client.get(log_url(model=ContentType.objects.get_for_model(Article).pk))
    summaries = [entry.audit_log_admin.summary for entry in response.context["cl"].result_list]
    assert summaries == ["Tags: link removed", "Tags: link added", "ID, Title"]
    objects = {entry.audit_log_admin.object.text for entry in response.context["cl"].result_list}
    assert objects == {"Ethiopia"}


def test_entry_page_of_a_link_shows_the_field_and_the_link(superuser_client, article, entry_url):
    entry = AuditLogEntry.objects.get(table_name=TAGS)
    response = superuser_client.get(entry_url(entry))
    detail = response.context["audit_log"]
    assert [(row.label, links_of(row)) for row in detail.display.diff.rows] == [("Tags", [(True, "single-origin")])]
    assert "+ single-origin" in text(response)
    assert response.context["subtitle"] == "Tags: link added (Article Ethiopia)"


def test_filter_by_changed_field_finds_the_links_of_a_many_to_many_field(superuser_client, article, tags, log_url):
    article.title = "Ethiopia Guji"
    article.save()
    article.related.add(Article.objects.create(title="Kenya"))
    links = list(AuditLogEntry.objects.filter(table_name=TAGS).values_list("pk", flat=True))
    model = ContentType.objects.get_for_model(Article).pk
    response = superuser_client.get(log_url(changed="tags"))
    assert [entry.pk for entry in response.context["cl"].result_list] == links
    response = superuser_client.get(log_url(changed="tags", model=model))
    assert [entry.pk for entry in response.context["cl"].result_list] == links
    related = superuser_client.get(log_url(changed="related", model=model))
    assert {entry.table_name for entry in related.context["cl"].result_list} == {"testapp_article_related"}


# --- the pure parts ------------------------------------------------------------------------


def test_link_changes_read_inserts_deletes_and_retargeting_updates():
    columns = {"parent_column": "article_id", "target_column": "tag_id"}
    assert link_changes("INSERT", {"id": 1, "article_id": 2, "tag_id": 3}, **columns) == (LinkChange(True, 3),)
    assert link_changes("DELETE", {"id": 1, "article_id": 2, "tag_id": 3}, **columns) == (LinkChange(False, 3),)
    assert link_changes("UPDATE", {"tag_id": [3, 4]}, **columns) == (LinkChange(False, 3), LinkChange(True, 4))
    assert link_changes("UPDATE", {"article_id": [2, 5]}, **columns) is None  # moved to another object
    assert link_changes("INSERT", ["not", "a", "row"], **columns) is None


def test_group_entries_joins_links_to_the_own_entry_of_their_transaction(db):
    def entry(pk, transaction_id, table="testapp_article"):
        return LogEntryFactory.build(pk=pk, transaction_id=transaction_id, table_name=table)

    save, save_links = entry(1, 10), [entry(2, 10, TAGS), entry(3, 10, TAGS)]
    second_save = entry(4, 10)
    alone = entry(5, 11, TAGS)
    deletion_links, deletion = entry(6, 12, TAGS), entry(7, 12)
    page = [deletion, deletion_links, alone, second_save, *save_links, save]  # newest first, as a page lists them
    groups = group_entries(page, lambda entry: entry.table_name == TAGS)
    assert [(group.own and group.own.pk, [link.pk for link in group.links]) for group in groups] == [
        (7, [6]),
        (None, [5]),
        (4, []),
        (1, [2, 3]),
    ]
    assert [group.action for group in groups] == ["UPDATE", "UPDATE", "UPDATE", "UPDATE"]
    assert groups[1].entry.pk == 5
    assert [entry.pk for entry in groups[0].entries] == [6, 7]
