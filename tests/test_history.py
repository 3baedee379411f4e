"""Time travel: states rebuilt from the log, revert and restore."""

import datetime
import json
from decimal import Decimal

import pytest
from django.contrib.contenttypes.models import ContentType
from django.db import connection, migrations, models
from django.utils import timezone

from audit_log import history
from audit_log.context import audit_context
from audit_log.fields import AuditLogsField
from audit_log.history import RevertConflict
from tests.factories import ArticleFactory, CharThingFactory, CustomerFactory, InvoiceFactory, TagFactory
from tests.test_schema_editor import Migrator, run
from tests.testapp.models import Article, AuditLogEntry, Awkward, CharThing, Customer, Invoice, Tag

pytestmark = pytest.mark.django_db

TAGS = Article.tags.through._meta.db_table


def log_of(obj_or_model, pk=None):
    """The entries of one object's own row and links, oldest first."""
    model = obj_or_model if pk is not None else type(obj_or_model)
    pk = pk if pk is not None else obj_or_model.pk
    content_type = ContentType.objects.get_for_model(model)
    return list(AuditLogEntry.objects.filter(content_type=content_type, object_id=str(pk)).order_by("id"))


def newest_id():
    return AuditLogEntry.objects.order_by("-id").values_list("id", flat=True).first() or 0


def row(table, pk):
    """The row as PostgreSQL holds it, in the log's JSON form."""
    [[value]] = run(f'SELECT to_jsonb(t)::text FROM "{table}" AS t WHERE id = %s', [pk])
    return json.loads(value, parse_float=Decimal)


def link_tags(article, *tags, remove=False):
    """Add or remove tags, and log the links as the link table's triggers do, should it have none."""
    start = newest_id()
    through = Article.tags.through
    if remove:
        ids = dict(through.objects.filter(article=article, tag__in=tags).values_list("tag_id", "id"))
        article.tags.remove(*tags)
    else:
        article.tags.add(*tags)
        ids = dict(through.objects.filter(article=article, tag__in=tags).values_list("tag_id", "id"))
    if not AuditLogEntry.objects.filter(id__gt=start, table_name=TAGS).exists():  # no trigger on the link table yet
        for tag in tags:
            AuditLogEntry.objects.create(
                content_type=ContentType.objects.get_for_model(Article),
                object_id=str(article.pk),
                table_name=TAGS,
                action="DELETE" if remove else "INSERT",
                at=timezone.now(),
                changes={"id": ids[tag.pk], "article_id": article.pk, "tag_id": tag.pk},
                transaction_id=0,
                context_type="unknown",
            )


# --- state ------------------------------------------------------------------------------------------


def test_state_at_rebuilds_the_row_at_each_moment():
    invoice = InvoiceFactory(number="A-1", amount=Decimal("10.00"))
    before = timezone.now() - datetime.timedelta(seconds=1)
    invoice.number, invoice.amount = "A-2", Decimal("12.50")
    invoice.save()
    Invoice.objects.filter(pk=invoice.pk).update(status="sent")
    insert, update, _status = log_of(invoice)

    assert invoice.audit_logs.state_at(before) is None
    first = invoice.audit_logs.state_at(insert.at)
    assert (first.number, first.amount, first.status) == ("A-1", Decimal("10.00"), "draft")
    second = Invoice.audit_state(invoice.pk, at=update.at)
    assert (second.number, second.amount, second.status) == ("A-2", Decimal("12.50"), "draft")
    assert invoice.audit_logs.state_at(timezone.now()).status == "sent"
    assert second._audit_state.entry_id == update.pk
    assert second._audit_state.entry() == update
    assert second._state.adding


def test_state_at_finds_deleted_objects_and_is_none_after_the_delete():
    invoice = InvoiceFactory(number="GONE-1")
    pk = invoice.pk
    invoice.delete()
    insert, delete = log_of(Invoice, pk)

    assert Invoice.audit_state(pk, at=insert.at).number == "GONE-1"
    assert Invoice.audit_state(pk, at=delete.at) is None
    assert Invoice.audit_state(pk + 1000, at=timezone.now()) is None


def test_state_before_and_after_an_entry():
    invoice = InvoiceFactory(number="E-1")
    invoice.number = "E-2"
    invoice.save()
    pk = invoice.pk
    invoice.delete()
    insert, update, delete = log_of(Invoice, pk)

    assert insert.state_before() is None
    assert insert.state_after().number == "E-1"
    assert update.state_before().number == "E-1"
    assert update.state_after().number == "E-2"
    assert delete.state_before().number == "E-2"
    assert delete.state_after() is None


def test_state_converts_awkward_values_like_a_row_django_reads():
    values = {
        "amount": Decimal("123456789012345.12345"),
        "day": datetime.date(2026, 2, 28),
        "moment": datetime.datetime(2026, 2, 28, 12, 30, 15, 123456, tzinfo=datetime.UTC),
        "blob": b"\x00\x01\xff",
        "tags": ["a", "b,c", 'd"e'],
        "data": {"nested": {"null": None, "list": [1, 2.5, "x"]}, "n": 12345678901234567890},
        "text": "æøå 日本語",
        "ratio": float("inf"),
    }
    thing = Awkward.objects.create(**values)
    Awkward.objects.filter(pk=thing.pk).update(
        amount=None, day=None, moment=None, blob=None, tags=[], data={}, text="", ratio=0.5
    )
    insert = log_of(thing)[0]

    state = thing.audit_logs.state_at(insert.at)
    assert state.amount == values["amount"]
    assert isinstance(state.amount, Decimal)
    assert state.day == values["day"]
    assert state.moment == values["moment"]
    assert bytes(state.blob) == values["blob"]
    assert state.tags == values["tags"]
    assert state.data == values["data"]
    assert state.text == values["text"]
    assert state.ratio == float("inf")
    assert state._audit_state.values["blob"] == "\\x0001ff"
    assert state._audit_state.unknown_columns == {}


def test_state_follows_a_primary_key_change():
    invoice = InvoiceFactory(number="K-1")
    old = invoice.pk
    with connection.cursor() as cursor:
        cursor.execute("UPDATE testapp_invoice SET id = -id WHERE id = %s", [old])
        cursor.execute("UPDATE testapp_invoice SET number = 'K-2' WHERE id = %s", [-old])
    moved = Invoice.objects.get(pk=-old)
    insert, key_change, update = log_of(Invoice, old) + log_of(moved)

    assert key_change.changes == {"id": [old, -old]}
    earlier = moved.audit_logs.state_at(insert.at)
    assert (earlier.pk, earlier.number) == (old, "K-1")
    assert key_change.state_before().pk == old
    assert key_change.state_after().pk == -old
    assert update.state_before().number == "K-1"
    assert Invoice.audit_state(-old, at=update.at).number == "K-2"


def test_state_reports_masked_and_excluded_columns_and_invents_nothing():
    customer = CustomerFactory(password="secret-hash", last_seen=timezone.now())
    state = history.state_at(Customer, customer.pk, timezone.now())

    assert state.unknown_columns == {"password": history.MASKED, "last_seen": history.EXCLUDED}
    assert state.values["password"] == "**masked**"
    assert "last_seen" not in state.values
    assert state.instance.password is None
    assert state.instance.last_seen is None
    assert state.instance.name == customer.name


def test_state_of_an_object_older_than_its_log_uses_the_later_entries():
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL session_replication_role = replica")  # no triggers: a row from before the log
        cursor.execute("INSERT INTO testapp_invoice (number, status, amount, notes) VALUES ('OLD', 'draft', 5, '')")
        cursor.execute("SET LOCAL session_replication_role = DEFAULT")
    invoice = Invoice.objects.get(number="OLD")
    moment = timezone.now()
    Invoice.objects.filter(pk=invoice.pk).update(number="NEW")

    state = history.state_at(Invoice, invoice.pk, moment)
    assert state.instance.number == "OLD"
    assert not state.complete
    assert state.unknown_columns["amount"] == history.NOT_LOGGED
    assert history.state_at(Invoice, invoice.pk, timezone.now()).instance.number == "NEW"


# --- schema drift (the Migrator of test_schema_editor applies operations to the test database) ---------


@pytest.fixture
def thing_model():
    """An audited model with a unique name and a colour, in the schema editor tests' app."""
    ContentType.objects.clear_cache()  # another test's (rolled back) content type of the same name
    migrator = Migrator()
    fields = [
        ("id", models.AutoField(primary_key=True)),
        ("name", models.CharField(max_length=50, unique=True)),
        ("colour", models.CharField(max_length=9, default="red")),
        ("audit_logs", AuditLogsField(to="testapp.auditlogentry")),
    ]
    migrator.forwards(migrations.CreateModel("Thing", fields))
    migrator.model = lambda: migrator.state.apps.get_model("schematest", "Thing")
    return migrator


def test_state_keeps_values_of_columns_the_model_no_longer_has(thing_model):
    Thing = thing_model.model()
    thing = Thing.objects.create(name="a", colour="blue")
    moment = timezone.now()
    thing_model.forwards(migrations.RemoveField("Thing", "colour"))
    Thing = thing_model.model()

    state = history.state_at(Thing, thing.pk, moment)
    assert state.missing_columns == {"colour"}
    assert state.values["colour"] == "blue"
    assert state.instance.name == "a"


def test_revert_skips_columns_the_table_no_longer_has(thing_model):
    Thing = thing_model.model()
    thing = Thing.objects.create(name="a", colour="blue")
    moment = timezone.now()
    Thing.objects.filter(pk=thing.pk).update(name="b")
    thing_model.forwards(migrations.RemoveField("Thing", "colour"))
    Thing = thing_model.model()

    result = history.revert(moment, model=Thing, pk=thing.pk)
    assert result.changed_columns == ("name",)
    assert result.skipped_columns == ("colour",)
    assert Thing.objects.get(pk=thing.pk).name == "a"


def test_restore_refuses_a_new_not_null_column_without_default(thing_model):
    Thing = thing_model.model()
    thing = Thing.objects.create(name="a")
    thing.delete()
    delete = AuditLogEntry.objects.filter(table_name="schematest_thing", action="DELETE").get()
    thing_model.forwards(
        migrations.AddField("Thing", "code", models.CharField(max_length=5, default="x"), preserve_default=False)
    )
    start = newest_id()

    with pytest.raises(RevertConflict) as raised:
        history.restore(delete, model=thing_model.model())
    assert raised.value.kind == "not-null"
    assert raised.value.columns == ("code",)
    assert "code" in str(raised.value)
    assert newest_id() == start
    assert not thing_model.model().objects.exists()


def test_restore_fills_a_new_column_from_its_default(thing_model):
    Thing = thing_model.model()
    thing = Thing.objects.create(name="a")
    thing.delete()
    delete = AuditLogEntry.objects.filter(table_name="schematest_thing", action="DELETE").get()
    thing_model.forwards(migrations.AddField("Thing", "code", models.CharField(max_length=5, default="x")))

    result = history.restore(delete, model=thing_model.model())
    assert result.defaulted_columns == ("code",)
    assert (result.instance.name, result.instance.code) == ("a", "x")


def test_revert_refuses_a_unique_violation_and_writes_nothing(thing_model):
    Thing = thing_model.model()
    first = Thing.objects.create(name="x", colour="red")
    Thing.objects.filter(pk=first.pk).update(name="y", colour="blue")
    Thing.objects.create(name="x")
    rename = AuditLogEntry.objects.filter(table_name="schematest_thing", action="UPDATE").get()
    start = newest_id()

    with pytest.raises(RevertConflict) as raised:
        history.revert(rename, model=Thing)
    assert raised.value.kind == "unique"
    assert newest_id() == start
    assert Thing.objects.filter(pk=first.pk).values_list("name", "colour").get() == ("y", "blue")


# --- revert --------------------------------------------------------------------------------------------


def test_revert_writes_one_update_of_the_columns_that_differ(user):
    invoice = InvoiceFactory(number="R-1", amount=Decimal("10.00"), notes="same")
    invoice.number = "R-2"
    invoice.save()
    invoice.amount = Decimal("99.99")
    invoice.save()
    rename = log_of(invoice)[1]

    result = invoice.audit_logs.revert(rename, performed_by=user)
    entry = AuditLogEntry.objects.get(pk=result.entry_id)
    assert entry.action == "UPDATE"
    assert entry.changes == {"number": ["R-2", "R-1"], "amount": [Decimal("99.99"), Decimal("10.00")]}
    assert (entry.context_type, entry.context["reverted_entry"], entry.performed_by) == ("revert", rename.pk, user)
    assert set(result.changed_columns) == {"number", "amount"}
    assert list(result.entries()) == [entry]
    assert (result.instance.number, result.instance.amount) == ("R-1", Decimal("10.00"))


def test_revert_as_of_a_time():
    invoice = InvoiceFactory(number="T-1")
    moment = timezone.now()
    Invoice.objects.filter(pk=invoice.pk).update(number="T-2", status="paid")

    result = history.revert(moment, obj=invoice)
    invoice.refresh_from_db()
    assert (invoice.number, invoice.status) == ("T-1", "draft")
    entry = AuditLogEntry.objects.get(pk=result.entry_id)
    assert entry.context["as_of"] == moment.isoformat()
    assert entry.context_type == "revert"


def test_revert_with_nothing_to_change_writes_nothing():
    invoice = InvoiceFactory(number="N-1")
    start = newest_id()

    result = history.revert(timezone.now(), obj=invoice)
    assert (result.action, result.entry_id, result.changed_columns) == (None, None, ())
    assert newest_id() == start


def test_revert_round_trips_awkward_values_exactly():
    thing = Awkward.objects.create(
        amount=Decimal("1.50000"),
        day=datetime.date(2026, 2, 28),
        moment=datetime.datetime(2026, 2, 28, 12, 30, tzinfo=datetime.UTC),
        blob=b"\x00\x01\xff",
        tags=["a", "b,c"],
        data={"list": [1, 2.5, None]},
        text="x",
        ratio=float("-inf"),
    )
    original = row("testapp_awkward", thing.pk)
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE testapp_awkward SET amount = 'NaN', day = 'infinity', blob = NULL, tags = '{}', "
            "data = '{}', ratio = 'NaN' WHERE id = %s",
            [thing.pk],
        )
    update = log_of(thing)[1]

    history.revert(update)
    assert row("testapp_awkward", thing.pk) == original


def test_revert_leaves_masked_and_excluded_columns_as_they_are():
    customer = CustomerFactory(name="Ingrid", password="hash-1")
    customer.name, customer.password, customer.last_seen = "Ingrid Berg", "hash-2", timezone.now()
    customer.save()
    change = log_of(customer)[1]

    result = change.revert()
    customer.refresh_from_db()
    assert (customer.name, customer.password) == ("Ingrid", "hash-2")
    assert customer.last_seen is not None
    assert result.kept_columns == {"password": history.MASKED, "last_seen": history.EXCLUDED}
    assert AuditLogEntry.objects.get(pk=result.entry_id).changes == {"name": ["Ingrid Berg", "Ingrid"]}


def test_revert_refuses_a_foreign_key_to_a_deleted_row_and_writes_nothing():
    customer = CustomerFactory()
    invoice = InvoiceFactory(customer=customer, number="F-1")
    moment = timezone.now()
    invoice.number = "F-2"
    invoice.save()
    customer.delete()  # on_delete=SET_NULL: logged as an UPDATE of the invoice
    start = newest_id()

    with pytest.raises(RevertConflict) as raised:
        history.revert(moment, obj=invoice)
    assert raised.value.kind == "foreign-key"
    assert raised.value.columns == ("customer_id",)
    assert newest_id() == start
    invoice.refresh_from_db()
    assert (invoice.number, invoice.customer_id) == ("F-2", None)


def test_revert_refuses_a_moment_before_the_object_existed():
    invoice = InvoiceFactory()
    with pytest.raises(RevertConflict) as raised:
        history.revert(log_of(invoice)[0])
    assert raised.value.kind == "absent"


def test_revert_refuses_an_entry_of_another_object():
    invoice, other = InvoiceFactory(), InvoiceFactory()
    with pytest.raises(history.HistoryError):
        invoice.audit_logs.revert(log_of(other)[0])


def test_revert_inside_a_transaction_rolls_back_only_itself():
    customer = CustomerFactory()
    invoice = InvoiceFactory(customer=customer, number="S-1")
    moment = timezone.now()
    customer.delete()
    with audit_context("outer"):
        Invoice.objects.filter(pk=invoice.pk).update(notes="kept")
        with pytest.raises(RevertConflict):
            history.revert(moment, obj=invoice)
        assert Invoice.objects.get(pk=invoice.pk).notes == "kept"


# --- restore ----------------------------------------------------------------------------------------------


def test_restore_inserts_the_deleted_row_with_its_old_key(user):
    invoice = InvoiceFactory(number="D-1", amount=Decimal("7.25"))
    pk = invoice.pk
    original = row("testapp_invoice", pk)
    invoice.delete()
    delete = log_of(Invoice, pk)[-1]

    result = delete.restore(performed_by=user)
    assert row("testapp_invoice", pk) == original
    entry = AuditLogEntry.objects.get(pk=result.entry_id)
    assert (entry.action, entry.object_id, entry.context_type) == ("INSERT", str(pk), "restore")
    assert entry.context["restored_entry"] == delete.pk
    assert entry.performed_by == user
    assert result.pk == pk


def test_restore_fills_masked_columns_with_their_empty_value():
    customer = CustomerFactory(name="Ola", password="hash")
    pk = customer.pk
    customer.delete()

    result = log_of(Customer, pk)[-1].restore()
    assert (result.instance.name, result.instance.password) == ("Ola", "")
    assert set(result.defaulted_columns) == {"password", "last_seen"}


def test_restore_refuses_a_key_taken_again():
    thing = CharThingFactory(code="SAME")
    thing.delete()
    delete = log_of(CharThing, "SAME")[-1]
    CharThingFactory(code="SAME", name="newcomer")

    with pytest.raises(RevertConflict) as raised:
        history.restore(delete)
    assert raised.value.kind == "exists"
    assert CharThing.objects.get(code="SAME").name == "newcomer"


def test_restore_refuses_an_entry_that_is_not_a_delete():
    invoice = InvoiceFactory()
    with pytest.raises(history.HistoryError):
        history.restore(log_of(invoice)[0])


def test_revert_of_a_deleted_object_inserts_it_again():
    invoice = InvoiceFactory(number="B-1")
    moment = timezone.now()
    pk = invoice.pk
    invoice.delete()

    result = history.revert(moment, model=Invoice, pk=pk)
    assert result.action == "INSERT"
    assert Invoice.objects.get(pk=pk).number == "B-1"


# --- many-to-many ---------------------------------------------------------------------------------------


@pytest.fixture
def tags():
    return [TagFactory() for _ in range(3)]


def test_state_rebuilds_many_to_many_sets(tags):
    one, two, three = tags
    article = ArticleFactory()
    link_tags(article, one, two)
    moment = timezone.now()
    link_tags(article, one, remove=True)
    link_tags(article, three)

    then = article.audit_logs.state_at(moment)._audit_state
    assert then.m2m["tags"] == {one.pk, two.pk}
    assert "readers" not in then.m2m  # m2m_exclude
    assert history.state_at(Article, article.pk, timezone.now()).m2m["tags"] == {two.pk, three.pk}
    assert then.values == {"id": article.pk, "title": article.title}  # link entries are not columns


def test_revert_brings_many_to_many_sets_back(tags):
    one, two, three = tags
    article = ArticleFactory()
    link_tags(article, one, two)
    moment = timezone.now()
    link_tags(article, one, remove=True)
    link_tags(article, three)

    result = article.audit_logs.revert(moment)
    assert set(article.tags.values_list("pk", flat=True)) == {one.pk, two.pk}
    assert result.m2m_added == {"tags": {one.pk}}
    assert result.m2m_removed == {"tags": {three.pk}}
    assert result.action is None


def test_restore_adds_the_links_back(tags):
    one, two, _ = tags
    article = ArticleFactory(title="Brewing")
    link_tags(article, one, two)
    pk = article.pk
    link_tags(article, one, two, remove=True)  # as Django's delete() does, before the row
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM testapp_article WHERE id = %s", [pk])
    delete = AuditLogEntry.objects.get(table_name="testapp_article", object_id=str(pk), action="DELETE")

    if AuditLogEntry.objects.filter(table_name=TAGS, action="DELETE", transaction_id=delete.transaction_id).exists():
        assert delete.state_before()._audit_state.m2m["tags"] == {one.pk, two.pk}
    result = history.restore(delete)
    assert result.instance.title == "Brewing"
    assert set(Article.objects.get(pk=pk).tags.values_list("pk", flat=True)) == {one.pk, two.pk}


def test_restore_after_django_deletes_the_links_with_the_object(tags):
    one, two, _ = tags
    article = ArticleFactory(title="Cupping")
    article.tags.add(one, two)
    pk = article.pk
    article.delete()
    delete = AuditLogEntry.objects.get(table_name="testapp_article", object_id=str(pk), action="DELETE")
    if not AuditLogEntry.objects.filter(table_name=TAGS).exists():
        pytest.skip("the link table has no triggers yet")

    history.restore(delete)
    assert set(Article.objects.get(pk=pk).tags.values_list("pk", flat=True)) == {one.pk, two.pk}


def test_revert_refuses_links_to_deleted_targets(tags):
    one, two, _ = tags
    article = ArticleFactory()
    link_tags(article, one, two)
    moment = timezone.now()
    link_tags(article, one, remove=True)
    Tag.objects.filter(pk=one.pk).delete()
    start = newest_id()

    with pytest.raises(RevertConflict) as raised:
        article.audit_logs.revert(moment)
    assert (raised.value.kind, raised.value.columns) == ("foreign-key", ("tags",))
    assert newest_id() == start
