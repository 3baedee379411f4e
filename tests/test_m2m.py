"""Many-to-many links are logged under the model declaring the field, by its auto-created table's triggers."""

import io
import json
import re

import pytest
from django.contrib.contenttypes.models import ContentType
from django.core.management import CommandError, call_command
from django.db import connection, migrations, models
from django.db.migrations.autodetector import MigrationAutodetector
from django.db.migrations.questioner import MigrationQuestioner
from django.db.migrations.state import ModelState, ProjectState
from django.db.migrations.writer import MigrationWriter
from django.test.utils import isolate_apps

from audit_log import checks as audit_checks
from audit_log import sql, triggers
from audit_log.context import audit_context
from audit_log.fields import AuditLogsField
from audit_log.models import AuditLoggedModel
from tests.factories import UserFactory
from tests.skips import require_migrations
from tests.test_schema_editor import Migrator, function_exists, run, triggers_on
from tests.testapp.models import Article, AuditLogEntry, Tag

pytestmark = pytest.mark.django_db

TAGS = "testapp_article_tags"
RELATED = "testapp_article_related"
READERS = "testapp_article_readers"
ALL_TRIGGERS = set(sql.TRIGGER_NAMES.values())


def links(table=TAGS):
    """``(content type, object_id, action, changes)`` of the entries of a many-to-many table, oldest first."""
    return [
        (entry.content_type.model_class(), entry.object_id, entry.action, entry.changes)
        for entry in AuditLogEntry.objects.filter(table_name=table).select_related("content_type").order_by("id")
    ]


@pytest.fixture
def article():
    return Article.objects.create(title="Roasting")


@pytest.fixture
def tags():
    return {name: Tag.objects.create(name=name) for name in ("light-roast", "single-origin", "decaf")}


def through_ids(article):
    return dict(Article.tags.through.objects.filter(article=article).values_list("tag_id", "id"))


# --- what is logged ------------------------------------------------------------------------


def test_adding_and_removing_links_is_logged_under_the_declaring_object(article, tags):
    light, single = tags["light-roast"], tags["single-origin"]
    article.tags.add(light, single)
    ids = through_ids(article)
    article.tags.remove(single)
    logged = links()
    # add() inserts both links in one statement, in the order of a set of ids: any order.
    assert sorted(logged[:2], key=lambda link: link[3]["tag_id"]) == sorted(
        [
            (Article, str(article.pk), "INSERT", {"id": ids[light.pk], "article_id": article.pk, "tag_id": light.pk}),
            (Article, str(article.pk), "INSERT", {"id": ids[single.pk], "article_id": article.pk, "tag_id": single.pk}),
        ],
        key=lambda link: link[3]["tag_id"],
    )
    assert logged[2:] == [
        (Article, str(article.pk), "DELETE", {"id": ids[single.pk], "article_id": article.pk, "tag_id": single.pk}),
    ]


def test_set_and_clear_log_only_the_links_that_change(article, tags):
    article.tags.set([tags["light-roast"], tags["single-origin"]])
    article.tags.set([tags["light-roast"], tags["decaf"]])  # one removed, one added, one kept
    article.tags.clear()
    log = [(action, changes["tag_id"]) for _, _, action, changes in links()]
    # Links added or removed by one statement are logged in no particular order among themselves.
    assert sorted(log[:2]) == sorted([("INSERT", tags["light-roast"].pk), ("INSERT", tags["single-origin"].pk)])
    assert log[2:4] == [("DELETE", tags["single-origin"].pk), ("INSERT", tags["decaf"].pk)]
    assert sorted(log[4:]) == sorted([("DELETE", tags["light-roast"].pk), ("DELETE", tags["decaf"].pk)])


def test_links_made_from_the_other_side_are_logged_under_the_declaring_object(article, tags):
    tags["decaf"].articles.add(article)
    [(model, object_id, action, changes)] = links()
    assert (model, object_id, action, changes["tag_id"]) == (Article, str(article.pk), "INSERT", tags["decaf"].pk)


def test_raw_sql_on_the_link_table_is_logged_too(article, tags):
    light, decaf = tags["light-roast"].pk, tags["decaf"].pk
    [[link]] = run(f"INSERT INTO {TAGS} (article_id, tag_id) VALUES (%s, %s) RETURNING id", [article.pk, light])
    run(f"UPDATE {TAGS} SET tag_id = %s WHERE id = %s", [decaf, link])
    run(f"DELETE FROM {TAGS}")
    key = str(article.pk)
    assert links() == [
        (Article, key, "INSERT", {"id": link, "article_id": article.pk, "tag_id": light}),
        (Article, key, "UPDATE", {"tag_id": [light, decaf]}),
        (Article, key, "DELETE", {"id": link, "article_id": article.pk, "tag_id": decaf}),
    ]


def test_truncating_the_link_table_logs_every_link_removed(article, tags):
    other = Article.objects.create(title="Brewing")
    article.tags.add(tags["decaf"])
    other.tags.add(tags["decaf"])
    run("SET CONSTRAINTS ALL IMMEDIATE")  # TRUNCATE refuses a table with pending foreign-key checks
    run(f"TRUNCATE {TAGS}")
    removed = [(object_id, action) for _, object_id, action, _ in links() if action == "DELETE"]
    assert sorted(removed) == sorted([(str(article.pk), "DELETE"), (str(other.pk), "DELETE")])


def test_a_set_of_many_links_is_logged_by_one_statement(article):
    many = Tag.objects.bulk_create(Tag(name=f"tag-{number}") for number in range(200))
    article.tags.set(many)
    assert len(links()) == 200
    assert {changes["tag_id"] for *_, changes in links()} == {tag.pk for tag in many}


def test_links_carry_the_context_and_share_the_transaction_of_the_save(article, tags):
    user = UserFactory(username="alice")
    with audit_context("test", performed_by=user, context={"job": "retag"}):
        from django.db import transaction

        with transaction.atomic():
            article.title = "Roasting at home"
            article.save()
            article.tags.add(tags["light-roast"])
    own, link = AuditLogEntry.objects.filter(object_id=str(article.pk)).order_by("-id")[:2][::-1]
    assert (own.table_name, link.table_name) == ("testapp_article", TAGS)
    assert own.transaction_id == link.transaction_id
    assert link.performed_by_label == "alice"
    assert link.context == {"job": "retag"}
    assert link.context_id == own.context_id


def test_the_objects_audit_logs_hold_its_own_entries_and_its_links(article, tags):
    article.tags.add(tags["decaf"])
    entries = list(article.audit_logs.all())
    assert [entry.table_name for entry in entries] == [TAGS, "testapp_article"]  # newest first
    assert list(Article.objects.filter(audit_logs__table_name=TAGS)) == [article]


def test_a_self_referential_link_is_logged_under_the_from_side(article):
    other = Article.objects.create(title="Brewing")
    article.related.add(other)  # symmetrical: two rows, one from each side
    rows = [
        (object_id, changes["from_article_id"], changes["to_article_id"]) for _, object_id, _, changes in links(RELATED)
    ]
    assert rows == [(str(article.pk), article.pk, other.pk), (str(other.pk), other.pk, article.pk)]


def test_a_field_named_in_m2m_exclude_is_not_logged(article):
    article.readers.add(UserFactory())
    assert triggers_on(READERS) == set()
    assert not function_exists(READERS)
    assert links(READERS) == []


def test_an_audited_link_table_gets_the_four_triggers():
    assert triggers_on(TAGS) == ALL_TRIGGERS
    assert triggers_on(RELATED) == ALL_TRIGGERS


# --- the options, checks and migrations ------------------------------------------------------


def test_m2m_exclude_is_recorded_in_migrations():
    field = Article._meta.get_field("audit_logs")
    assert field.deconstruct()[3]["m2m_exclude"] == ["readers"]
    text, _ = MigrationWriter.serialize(field)
    assert text == "audit_log.fields.AuditLogsField(m2m_exclude=['readers'], to=settings.AUDIT_LOG_ENTRY_MODEL)"
    with pytest.raises(TypeError, match="lists of field names"):
        AuditLogsField(m2m_exclude="readers")


def test_changing_m2m_exclude_is_a_migration():
    def state(audit):
        project = ProjectState()
        project.add_model(ModelState.from_model(Tag))
        fields = [("id", models.AutoField(primary_key=True)), ("tags", models.ManyToManyField("testapp.tag"))]
        project.add_model(ModelState("testapp", "Article", [*fields, ("audit_logs", audit)]))
        return project

    before = state(AuditLogsField(to="testapp.auditlogentry"))
    after = state(AuditLogsField(to="testapp.auditlogentry", m2m_exclude=["tags"]))
    changes = MigrationAutodetector(before, after, MigrationQuestioner())._detect_changes()
    [operation] = changes["testapp"][0].operations
    assert isinstance(operation, migrations.AlterField)
    assert operation.field.m2m_exclude == ("tags",)


@isolate_apps("tests.testapp")
def test_leaving_out_an_unknown_many_to_many_field_is_an_error():
    class Member(models.Model):
        class Meta:
            app_label = "testapp"

    class Club(AuditLoggedModel):
        tags = models.ManyToManyField("testapp.Tag")
        members = models.ManyToManyField(Member, through="Membership")
        audit_logs = AuditLogsField(to="testapp.auditlogentry", m2m_exclude=["tags", "tgas", "members"])

        class Meta:
            app_label = "testapp"

    class Membership(models.Model):
        club = models.ForeignKey(Club, models.CASCADE)
        member = models.ForeignKey(Member, models.CASCADE)

        class Meta:
            app_label = "testapp"

    messages = audit_checks._check_audited_model(Club, "text")
    assert [message.id for message in messages] == ["audit_log.E009"]
    assert "many-to-many fields: tgas, members." in messages[0].msg  # a through= model is a model of its own
    assert [message.id for message in audit_checks._check_audited_model(Article, "text")] == []


@pytest.fixture
def migrator():
    return Migrator()


def create_article(*extra, audit=None):
    return migrations.CreateModel(
        "Post",
        [
            ("id", models.AutoField(primary_key=True)),
            *extra,
            ("audit_logs", audit or AuditLogsField(to="testapp.auditlogentry")),
        ],
    )


LABEL = migrations.CreateModel("Label", [("id", models.AutoField(primary_key=True))])


def post_links(table="schematest_post_labels"):
    """``(model, object_id, action, changes)`` of the entries of a many-to-many table, oldest first."""
    rows = run(
        "SELECT ct.model, e.object_id, e.action, e.changes FROM testapp_auditlogentry e "
        "JOIN django_content_type ct ON ct.id = e.content_type_id WHERE e.table_name = %s ORDER BY e.id",
        [table],
    )
    return [(*row[:3], json.loads(row[3]) if isinstance(row[3], str) else row[3]) for row in rows]


def states(model):
    """``{table: state}`` of ``model``'s audited tables (its many-to-many tables included)."""
    tables = {model._meta.db_table, *(field.remote_field.through._meta.db_table for field in model._meta.many_to_many)}
    return {result.table: result.state for result in triggers.status(connection, [model]) if result.table in tables}


def write_links(table="schematest_post_labels", post="post", label="label"):
    """Insert a post and two labels, link them, relink, unlink; return the post's id."""
    [[post_id]] = run(f"INSERT INTO schematest_{post} DEFAULT VALUES RETURNING id")
    [[first]] = run(f"INSERT INTO schematest_{label} DEFAULT VALUES RETURNING id")
    [[second]] = run(f"INSERT INTO schematest_{label} DEFAULT VALUES RETURNING id")
    post, label = f"{post}_id", f"{label}_id"
    run(f"INSERT INTO {table} ({post}, {label}) VALUES (%s, %s)", [post_id, first])
    run(f"UPDATE {table} SET {label} = %s", [second])
    run(f"DELETE FROM {table}")
    run("SET CONSTRAINTS ALL IMMEDIATE")  # no pending foreign-key checks: later DDL may drop the table
    return post_id


def test_a_model_created_with_a_many_to_many_field_audits_its_table_and_deleting_it_removes_them(migrator):
    migrator.forwards(
        LABEL,
        create_article(("labels", models.ManyToManyField("Label"))),
        migrations.CreateModel(
            "Labelling",
            [
                ("id", models.AutoField(primary_key=True)),
                ("post", models.ForeignKey("schematest.post", models.CASCADE)),
                ("label", models.ForeignKey("schematest.label", models.CASCADE)),
            ],
        ),
        migrations.AddField("Post", "badges", models.ManyToManyField("Label", through="Labelling")),
    )
    assert triggers_on("schematest_post_labels") == ALL_TRIGGERS
    assert triggers_on("schematest_labelling") == set()  # a through= model is a model: it has no AuditLogsField
    post = write_links()
    assert [(model, object_id, action) for model, object_id, action, _ in post_links()] == [
        ("post", str(post), "INSERT"),
        ("post", str(post), "UPDATE"),
        ("post", str(post), "DELETE"),
    ]
    migrator.forwards(migrations.RemoveField("Post", "badges"), migrations.DeleteModel("Post"))
    assert not function_exists("schematest_post_labels")


def test_adding_and_removing_a_many_to_many_field_installs_and_removes_its_triggers(migrator):
    migrator.forwards(LABEL, create_article())
    add = migrations.AddField("Post", "labels", models.ManyToManyField("Label"))
    before = migrator.state
    migrator.forwards(add)
    assert triggers_on("schematest_post_labels") == ALL_TRIGGERS
    write_links()
    assert len(post_links()) == 3
    migrator.backwards(add, before)
    assert not function_exists("schematest_post_labels")
    migrator.forwards(add)
    remove = migrations.RemoveField("Post", "labels")
    before = migrator.state
    migrator.forwards(remove)
    assert not function_exists("schematest_post_labels")
    migrator.backwards(remove, before)
    assert triggers_on("schematest_post_labels") == ALL_TRIGGERS


def test_m2m_exclude_changes_add_and_remove_the_tables_triggers(migrator):
    migrator.forwards(LABEL, create_article(("labels", models.ManyToManyField("Label"))))
    exclude = migrations.AlterField(
        "Post", "audit_logs", AuditLogsField(to="testapp.auditlogentry", m2m_exclude=["labels"])
    )
    before = migrator.state
    migrator.forwards(exclude)
    assert triggers_on("schematest_post_labels") == set()
    assert not function_exists("schematest_post_labels")
    assert triggers_on("schematest_post") == ALL_TRIGGERS  # the model itself is still audited
    migrator.backwards(exclude, before)
    assert triggers_on("schematest_post_labels") == ALL_TRIGGERS


def test_turning_auditing_on_and_off_includes_the_many_to_many_tables(migrator):
    migrator.forwards(
        LABEL,
        migrations.CreateModel(
            "Post", [("id", models.AutoField(primary_key=True)), ("labels", models.ManyToManyField("Label"))]
        ),
    )
    assert triggers_on("schematest_post_labels") == set()
    migrator.forwards(migrations.AddField("Post", "audit_logs", AuditLogsField(to="testapp.auditlogentry")))
    assert triggers_on("schematest_post_labels") == ALL_TRIGGERS
    migrator.forwards(migrations.RemoveField("Post", "audit_logs"))
    assert triggers_on("schematest_post_labels") == set()
    assert not function_exists("schematest_post_labels")


def test_renaming_the_declaring_model_logs_its_links_under_the_new_name(migrator):
    migrator.forwards(LABEL, create_article(("labels", models.ManyToManyField("Label"))))
    migrator.forwards(migrations.RenameModel("Post", "Note"))  # schematest_note_labels, note_id
    post = write_links("schematest_note_labels", post="note")
    assert {(model, object_id) for model, object_id, _, _ in post_links("schematest_note_labels")} == {
        ("note", str(post))
    }
    model = migrator.state.apps.get_model("schematest", "Note")
    assert states(model) == {"schematest_note": "ok", "schematest_note_labels": "ok"}


def test_renaming_the_related_model_keeps_the_link_table_logged(migrator):
    migrator.forwards(LABEL, create_article(("labels", models.ManyToManyField("Label"))))
    migrator.forwards(migrations.RenameModel("Label", "Badge"))  # the column becomes badge_id
    write_links(label="badge")
    assert [changes for *_, changes in post_links()][1] == {"badge_id": [1, 2]}
    model = migrator.state.apps.get_model("schematest", "Post")
    assert states(model) == {"schematest_post": "ok", "schematest_post_labels": "ok"}


def test_repointing_a_many_to_many_field_keeps_its_table_logged(migrator):
    migrator.forwards(
        LABEL,
        migrations.CreateModel("Badge", [("id", models.AutoField(primary_key=True))]),
        create_article(("labels", models.ManyToManyField("Label"))),
        migrations.AlterField("Post", "labels", models.ManyToManyField("Badge")),
    )
    model = migrator.state.apps.get_model("schematest", "Post")
    assert states(model) == {"schematest_post": "ok", "schematest_post_labels": "ok"}
    [[post]] = run("INSERT INTO schematest_post DEFAULT VALUES RETURNING id")
    [[badge]] = run("INSERT INTO schematest_badge DEFAULT VALUES RETURNING id")
    run("INSERT INTO schematest_post_labels (post_id, badge_id) VALUES (%s, %s)", [post, badge])
    [(_, _, _, changes)] = post_links()
    assert changes["badge_id"] == badge


def test_a_many_to_many_field_of_a_multi_table_child_is_logged_under_the_child(migrator):
    migrator.forwards(
        LABEL,
        create_article(),
        migrations.CreateModel(
            "Story",
            [
                (
                    "post_ptr",
                    models.OneToOneField("schematest.post", models.CASCADE, parent_link=True, primary_key=True),
                ),
                ("labels", models.ManyToManyField("Label")),
            ],
            bases=("schematest.post",),
        ),
    )
    assert triggers_on("schematest_story_labels") == ALL_TRIGGERS
    [[post]] = run("INSERT INTO schematest_post DEFAULT VALUES RETURNING id")
    run("INSERT INTO schematest_story (post_ptr_id) VALUES (%s)", [post])
    run("INSERT INTO schematest_label DEFAULT VALUES")
    run("INSERT INTO schematest_story_labels (story_id, label_id) VALUES (%s, 1)", [post])
    assert [(model, object_id) for model, object_id, _, _ in post_links("schematest_story_labels")] == [
        ("story", str(post))
    ]


def test_log_table_changes_refresh_the_many_to_many_tables_triggers(migrator):
    migrator.forwards(LABEL, create_article(("labels", models.ManyToManyField("Label"))))
    migrator.forwards(migrations.RemoveField("AuditLogEntry", "tenant"), app_label="testapp")
    write_links()  # the trigger no longer copies the dropped column
    assert len(post_links()) == 3


def test_sqlmigrate_shows_the_many_to_many_tables_triggers():
    require_migrations("testapp", "0004_article_tags")
    out = io.StringIO()
    call_command("sqlmigrate", "testapp", "0004", stdout=out)
    text = out.getvalue()
    assert f'CREATE OR REPLACE TRIGGER "audit_log_insert" AFTER INSERT ON "{TAGS}"' in text
    assert f'CREATE OR REPLACE FUNCTION "audit_log_fn_{READERS}"' not in text


# --- status and install ----------------------------------------------------------------------


def status_output():
    out = io.StringIO()
    try:
        call_command("audit_log_status", stdout=out, no_color=True)
    except CommandError as error:
        return error.returncode, out.getvalue()
    return 0, out.getvalue()


def test_status_lists_the_many_to_many_tables_and_never_as_orphaned():
    results = {result.table: result for result in triggers.status(connection)}
    assert results[TAGS].state == "ok"
    assert results[TAGS].model == "testapp.Article_tags"
    assert results[RELATED].state == "ok"
    assert READERS not in results
    assert [result for result in results.values() if result.state.startswith("orphaned")] == []


def test_an_existing_many_to_many_table_without_triggers_is_missing_until_install():
    # A project upgrading to this version: its link tables exist, without triggers.
    triggers_sql = sql.uninstall(TAGS)
    for statement in triggers_sql:
        run(statement)
    code, out = status_output()
    assert code == 1
    assert re.search(rf"{TAGS}\s+missing\s+testapp.Article_tags", out)
    out = io.StringIO()
    call_command("audit_log_install", stdout=out)
    assert f"Installed triggers on {TAGS} (testapp.Article_tags)" in out.getvalue()
    assert status_output()[0] == 0
    article = Article.objects.create(title="x")
    article.tags.add(Tag.objects.create(name="new"))
    assert links()[-1][:3] == (Article, str(article.pk), "INSERT")


def test_link_entries_name_the_declaring_models_content_type():
    article = Article.objects.create(title="x")
    article.tags.add(Tag.objects.create(name="new"))
    [entry] = AuditLogEntry.objects.filter(table_name=TAGS)
    assert entry.content_type == ContentType.objects.get_for_model(Article)
    assert entry.log_object == article
