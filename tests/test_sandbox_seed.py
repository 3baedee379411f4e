"""The sandbox's ``seed_demo`` and ``reprice`` commands, against the test PostgreSQL.

The sandbox's shop app is installed into this module's test run with
``override_settings`` (its tables and triggers made by the audit schema
editor), so its changes are logged into the test suite's log model, and
``seed_demo`` runs once for the module. Its history is committed (it is made
through real admin requests, each its own transaction); the module's teardown
drops the shop's tables and flushes the database, as ``transactional_db`` does.
"""

import datetime
import io
from decimal import Decimal

import pytest
from django.apps import apps
from django.conf import settings
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.management import create_permissions
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test import override_settings
from django.utils import timezone

from audit_log.loading import get_log_entry_model

SHOP_TABLES = (
    "shop_customer",
    "shop_tag",
    "shop_product",
    "shop_product_tags",  # a product's tags: logged under the product
    "shop_order",
    "shop_orderline",
    "shop_shipment",
)


@pytest.fixture(scope="module")
def shop(django_db_setup, django_db_blocker):
    """Install ``sandbox.shop`` (and the sandbox's URLs) for this module; yield its models."""
    override = override_settings(INSTALLED_APPS=[*settings.INSTALLED_APPS, "sandbox.shop"], ROOT_URLCONF="sandbox.urls")
    override.enable()
    models = list(apps.get_app_config("shop").get_models())  # in definition order: referenced models first
    try:
        with django_db_blocker.unblock():
            with connection.schema_editor() as editor:
                for model in models:
                    editor.create_model(model)  # the audit schema editor installs the triggers too
            create_permissions(apps.get_app_config("shop"), verbosity=0)  # what post_migrate would do
        yield models
    finally:
        with django_db_blocker.unblock(), connection.schema_editor() as editor:
            for model in reversed(models):
                editor.delete_model(model)
        for model in models:
            if admin.site.is_registered(model):
                admin.site.unregister(model)  # registered by the admin's autodiscover when the app was added
        override.disable()
        with django_db_blocker.unblock():
            call_command("flush", interactive=False, verbosity=0)


@pytest.fixture(scope="module")
def seed_output(shop, django_db_blocker):
    """Run ``seed_demo`` once for the module; return what it printed."""
    out = io.StringIO()
    with django_db_blocker.unblock():
        call_command("seed_demo", stdout=out)
    return out.getvalue()


@pytest.fixture
def story_entries(seed_output, db):
    """Every entry seed_demo wrote (the shop's and the log's own record), oldest first."""

    def fetch():
        log = get_log_entry_model()._default_manager
        record = log.filter(table_name=get_log_entry_model()._meta.db_table).earliest("id")
        return list(log.filter(id__lte=record.id).order_by("id"))

    return fetch


def local_day(entry):
    """The entry's day in the project's time zone."""
    return timezone.localtime(entry.at).date()


@pytest.fixture
def shop_entries(seed_output, db):
    """Entries of the shop's tables, oldest first."""

    def fetch(**filters):
        log = get_log_entry_model()._default_manager
        return list(log.filter(table_name__in=SHOP_TABLES, **filters).order_by("id"))

    return fetch


def test_seed_demo_reports_what_it_created(seed_output):
    assert "[23/23]" in seed_output
    assert "Backdated the " in seed_output
    assert "Created the demo history" in seed_output
    assert "by context:" in seed_output


def test_seed_demo_logs_every_action(shop_entries):
    assert {entry.action for entry in shop_entries()} == {"INSERT", "UPDATE", "DELETE"}


def test_seed_demo_logs_every_kind_of_context(shop_entries):
    entries = shop_entries()
    assert {entry.context_type for entry in entries} == {
        "http-request",
        "management-command",
        "unknown",
        "celery-task",
        "data-fix",
        "revert",
    }
    commands = {entry.context["command"] for entry in entries if entry.context_type == "management-command"}
    assert commands == {"seed_demo", "reprice"}
    [psql] = {entry.context["application_name"] for entry in entries if entry.context_type == "unknown"}
    assert psql == "psql"
    paths = {entry.context["path"] for entry in entries if entry.context_type == "http-request"}
    assert "/admin/shop/product/" in paths  # list_editable and actions post to the changelist
    assert any(path.endswith("/change/") for path in paths)
    assert any(path.endswith("/delete/") for path in paths)
    assert any(path.endswith("/add/") for path in paths)


def test_seed_demo_changes_are_made_by_several_users(shop_entries):
    entries = shop_entries()
    users = {entry.performed_by_label for entry in entries if entry.context_type in {"http-request", "data-fix"}}
    assert users == {"admin", "alice", "bob", "carol", "dave"}
    [dave] = [entry for entry in entries if entry.performed_by_label == "dave"]
    assert dave.performed_by_id is not None
    assert not get_user_model().objects.filter(pk=dave.performed_by_id).exists()  # deleted, the log keeps him


def test_seed_demo_masks_passwords_and_leaves_out_last_login(shop_entries):
    customers = shop_entries(table_name="shop_customer")
    inserts = [entry for entry in customers if entry.action == "INSERT"]
    assert inserts
    assert all(entry.changes["password"] == "**masked**" for entry in inserts)
    resets = [entry for entry in customers if entry.action == "UPDATE" and "password" in entry.changes]
    assert len(resets) == 2
    assert all(entry.changes == {"password": ["**masked**", "**masked**"]} for entry in resets)
    assert all("last_login" not in entry.changes for entry in customers)


def test_seed_demo_one_admin_save_is_one_transaction_and_one_context(shop_entries):
    order_edits = shop_entries(table_name="shop_order", context__path__regex=r"^/admin/shop/order/\d+/change/$")
    [edit] = [entry for entry in order_edits if entry.changes.get("status") == ["placed", "paid"]]
    together = shop_entries(transaction_id=edit.transaction_id)
    assert {(entry.table_name, entry.action) for entry in together} == {
        ("shop_order", "UPDATE"),  # the form, then the recalculated total
        ("shop_orderline", "UPDATE"),
        ("shop_orderline", "DELETE"),
        ("shop_orderline", "INSERT"),
    }
    assert {entry.context_id for entry in together} == {edit.context_id}
    assert {entry.performed_by_label for entry in together} == {"bob"}


def test_seed_demo_deleting_a_product_unlinks_its_order_lines_in_the_same_transaction(shop_entries):
    [deletion] = shop_entries(table_name="shop_product", action="DELETE")
    assert deletion.changes["sku"] == "COF-COL-DEC"
    [unlinked] = shop_entries(table_name="shop_orderline", transaction_id=deletion.transaction_id)
    assert unlinked.changes == {"product_id": [int(deletion.object_id), None]}


def test_seed_demo_changes_every_kind_of_value(shop_entries):
    changed = {column for entry in shop_entries(action="UPDATE") for column in entry.changes}
    assert {
        "description",  # long text (a word diff)
        "attributes",  # JSON
        "is_featured",  # boolean
        "price",  # decimal
        "stock",  # integer
        "status",  # choices
        "product_id",  # foreign key (to a deleted product)
        "shipped_at",  # datetime
        "delivered_on",  # date
        "delivery_window_start",  # time
        "label",  # binary
        "password",  # masked
        "email",  # the raw-SQL fix
    } <= changed
    [shipment] = shop_entries(table_name="shop_shipment", action="INSERT")
    assert len(shipment.object_id) == 36  # a UUID primary key


def test_seed_demo_logs_tag_changes_under_the_product_and_its_history_shows_them(shop_entries, client):
    from sandbox.shop.models import Product

    coffee = Product.objects.get(sku="COF-ETH-250")
    links = [entry for entry in shop_entries(table_name="shop_product_tags") if entry.object_id == str(coffee.pk)]
    assert [(entry.action, entry.context_type) for entry in links] == [
        ("INSERT", "management-command"),  # the import: single-origin, light-roast
        ("INSERT", "management-command"),
        ("DELETE", "http-request"),  # alice's edit: light-roast out, bestseller in
        ("INSERT", "http-request"),
        ("DELETE", "http-request"),  # three days later: bestseller moves to the Kenya
    ]
    assert {entry.content_type.model for entry in links} == {"product"}
    [edit] = shop_entries(
        table_name="shop_product", object_id=str(coffee.pk), action="UPDATE", changes__has_key="description"
    )
    assert {entry.transaction_id for entry in links[2:4]} == {edit.transaction_id}
    assert links[4].transaction_id != edit.transaction_id

    client.force_login(get_user_model().objects.get(username="admin"))
    response = client.get(f"/admin/shop/product/{coffee.pk}/history/")
    alices = next(item for item in response.context["entries"] if item.entry.pk == edit.pk)
    [tags] = [row for row in alices.diff.rows if row.links]
    assert (tags.label, [(link.added, link.value.text) for link in tags.links]) == (
        "Tags",
        [(True, "bestseller"), (False, "light-roast")],
    )
    imported = response.context["entries"][-1]
    assert imported.action == "INSERT"
    assert [[link.value.text for link in row.links] for row in imported.diff.rows if row.links] == [
        ["light-roast", "single-origin"]
    ]


def test_seed_demo_changes_tags_through_the_admin_on_several_days(shop_entries):
    edits = [entry for entry in shop_entries(table_name="shop_product_tags") if entry.context_type == "http-request"]
    assert len({local_day(entry) for entry in edits}) >= 2
    by_product = {}
    for entry in edits:
        by_product.setdefault(entry.object_id, set()).add(local_day(entry))
    assert max(len(days) for days in by_product.values()) >= 2  # one product's tags, changed on two days


def test_seed_demo_spreads_its_history_over_several_days(shop_entries, story_entries):
    entries = story_entries()
    assert len({local_day(entry) for entry in entries}) >= 4
    assert [entry.at for entry in entries] == sorted(entry.at for entry in entries)  # older steps, older times
    today = timezone.localdate()
    backdated = [entry for entry in entries if local_day(entry) < today]
    assert backdated
    assert all(7 <= timezone.localtime(entry.at).hour < 18 for entry in backdated)  # office hours
    # The objects' own dates follow the story's days.
    [placed] = shop_entries(table_name="shop_order", action="INSERT", changes__number="SO-1004")
    assert placed.changes["placed_at"] == placed.at.replace(microsecond=0).isoformat()  # the form has seconds
    [shipped] = shop_entries(table_name="shop_shipment", action="UPDATE", changes__has_key="shipped_at")
    assert shipped.changes["shipped_at"][1] == shipped.at.replace(microsecond=0).isoformat()
    [delivered] = shop_entries(table_name="shop_shipment", action="UPDATE", changes__has_key="delivered_on")
    assert delivered.changes["delivered_on"][1] == local_day(delivered).isoformat()


def test_seed_demo_records_that_it_backdated_its_entries(shop_entries, story_entries):
    log = get_log_entry_model()
    [record] = log._default_manager.filter(table_name=log._meta.db_table, action="UPDATE")
    assert record.context_type == "management-command"
    assert record.context["command"] == "seed_demo"
    backdated = [entry for entry in story_entries() if entry.id < record.id and local_day(entry) < timezone.localdate()]
    assert record.changes["entries"] == len(backdated)
    assert (record.changes["first_id"], record.changes["last_id"]) == (backdated[0].id, backdated[-1].id)
    assert record.id > max(entry.id for entry in shop_entries())  # written last, at the real time
    assert record.at > max(entry.at for entry in shop_entries())


def test_seed_demo_leaves_a_deleted_product_to_recover(shop_entries):
    from audit_log.history import restore
    from sandbox.shop.models import Product

    [deletion] = shop_entries(table_name="shop_product", action="DELETE")
    assert deletion.context_type == "http-request"
    assert deletion.context["path"].endswith("/delete/")
    assert not Product.objects.filter(pk=deletion.object_id).exists()
    restored = restore(deletion)  # rolled back with the test
    assert restored.instance.sku == "COF-COL-DEC"
    assert [tag.name for tag in restored.instance.tags.all()] == ["decaf"]


def test_seed_demo_reverts_a_bad_edit_through_the_admin(shop_entries):
    from sandbox.shop.models import Product

    dripper = Product.objects.get(sku="BRW-V60-02")
    [bad] = shop_entries(table_name="shop_product", performed_by_label="dave")
    [revert] = shop_entries(context_type="revert")
    alice = get_user_model().objects.get(username="alice")
    assert (revert.performed_by_id, revert.performed_by_label) == (alice.pk, "alice")
    assert revert.object_id == bad.object_id == str(dripper.pk)
    assert revert.context["reverted_entry"] == bad.id
    assert revert.changes["price"] == [Decimal("2490.00"), Decimal("24.90")]
    assert local_day(revert) > local_day(bad)  # the next day
    assert dripper.price == Decimal("24.90")


def test_seed_demo_names_the_import_by_its_command_alone(shop_entries):
    imports = {entry.context_id: entry for entry in shop_entries(context__command="seed_demo")}
    assert [entry.context["kwargs"].get("entries") for entry in imports.values()] == [None]  # no "entries=0"


def test_seed_demo_logs_the_reprice_command_as_one_statement(shop_entries):
    reprices = [entry for entry in shop_entries() if entry.context.get("command") == "reprice"]
    assert len(reprices) == 5  # the active coffees
    assert len({entry.transaction_id for entry in reprices}) == 1
    assert all(set(entry.changes) == {"price"} for entry in reprices)
    assert reprices[0].context["kwargs"]["category"] == "coffee"


def test_seed_demo_leaves_existing_data_alone(shop_entries):
    before = len(shop_entries())
    out = io.StringIO()
    call_command("seed_demo", stdout=out)
    assert "already" in out.getvalue()
    assert 'To start over: make demo ARGS="--reset"' in out.getvalue()  # the README's command
    assert len(shop_entries()) == before


def test_seed_demo_entries_generates_a_large_history(shop_entries):
    before = shop_entries()
    out = io.StringIO()
    call_command("seed_demo", entries=1500, stdout=out)
    new = [entry for entry in shop_entries() if entry.id > before[-1].id]
    assert len(new) >= 1500
    assert "Generated" in out.getvalue()
    assert {entry.action for entry in new} == {"INSERT", "UPDATE", "DELETE"}
    assert {"http-request", "management-command", "celery-task"} <= {entry.context_type for entry in new}
    assert len({entry.performed_by_label for entry in new if entry.performed_by_label}) > 5
    # Each simulated request or batch is a context of its own. (Their transactions are one here: the
    # test's, rolled back afterwards.)
    assert len({entry.context_id for entry in new}) > 100


def test_seed_demo_refuses_a_negative_count(shop):
    with pytest.raises(CommandError, match="0 or more"):
        call_command("seed_demo", entries=-1, stdout=io.StringIO())


def test_timeline_refuses_steps_out_of_order():
    from sandbox.shop.timeline import StepTime, Timeline

    timeline = Timeline(datetime.date(2026, 3, 10))
    moment = timeline.moment(StepTime(2, datetime.time(9, 30)))
    assert timezone.localtime(moment).isoformat() == "2026-03-08T09:30:00+01:00"
    with pytest.raises(ValueError, match="keep the steps in order"):
        timeline.moment(StepTime(3, datetime.time(10)))  # an earlier day after a later one
    assert timeline.moment(StepTime(0, datetime.time(0))) is None  # today: the real time
    with pytest.raises(ValueError, match="keep the steps in order"):
        timeline.moment(StepTime(1, datetime.time(9)))  # a past day after today


def test_reprice_changes_prices_in_one_statement(shop, entries):
    from sandbox.shop.models import Product

    teas = Product.objects.bulk_create(
        Product(sku=f"T-{n}", name=f"Tea {n}", category="tea", status="active", price=Decimal("10.00"))
        for n in range(3)
    )
    out = io.StringIO()
    call_command("reprice", "--category=tea", "--percent=12.5", "--sku-prefix=T-", stdout=out)
    assert "Repriced 3 tea product(s) by +12.5%." in out.getvalue()
    assert set(Product.objects.filter(sku__startswith="T-").values_list("price", flat=True)) == {Decimal("11.25")}
    updates = entries(action="UPDATE", table_name="shop_product", object_id__in=[str(tea.pk) for tea in teas])
    assert [entry.changes for entry in updates] == [{"price": [10.0, 11.25]}] * 3
    assert {entry.context["command"] for entry in updates} == {"reprice"}
    assert len({entry.transaction_id for entry in updates}) == 1


def test_reprice_refuses_when_nothing_matches(shop, db):
    with pytest.raises(CommandError, match="No product matches"):
        call_command("reprice", "--percent=5", "--sku-prefix=NOPE-", stdout=io.StringIO())
