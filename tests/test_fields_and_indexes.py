"""How the audit field and the log's indexes appear in migrations and in the database."""

import pytest
from django.core import checks
from django.db import connection, models
from django.db.migrations.writer import MigrationWriter
from django.db.models import Q

from audit_log.fields import AuditLogsField
from audit_log.indexes import BrinIndex, DeletionsIndex
from tests.plans import index_names
from tests.testapp.models import AuditLogEntry, Customer, Invoice


def test_audit_field_refers_to_the_entry_model_setting_in_migrations():
    name, path, args, kwargs = Customer._meta.get_field("audit_logs").deconstruct()
    assert (name, path, args) == ("audit_logs", "audit_log.fields.AuditLogsField", [])
    assert kwargs == {"to": "testapp.AuditLogEntry", "exclude": ["last_seen"], "mask": ["password"]}
    assert kwargs["to"].setting_name == "AUDIT_LOG_ENTRY_MODEL"
    text, imports = MigrationWriter.serialize(Invoice._meta.get_field("audit_logs"))
    assert text == "audit_log.fields.AuditLogsField(to=settings.AUDIT_LOG_ENTRY_MODEL)"
    assert "from django.conf import settings" in imports


def test_audit_field_pointing_elsewhere_names_its_model():
    field = AuditLogsField(to="otherapp.OtherLog")
    assert field.swappable_setting is None
    assert field.deconstruct()[3]["to"] == "otherapp.otherlog"


def test_log_model_passes_model_checks_without_contrib_postgres():
    # Django 6 requires django.contrib.postgres for its own BrinIndex (postgres.E005).
    errors = [error for error in checks.run_checks(tags=[checks.Tags.models]) if error.obj is AuditLogEntry]
    assert errors == []


@pytest.mark.django_db
def test_brin_index_sql_and_deconstruction():
    index = BrinIndex(fields=["at"], name="log_at_brin", pages_per_range=16)
    with connection.schema_editor(collect_sql=True) as editor:
        statement = str(index.create_sql(AuditLogEntry, editor))
    assert (
        statement
        == 'CREATE INDEX "log_at_brin" ON "testapp_auditlogentry" USING brin ("at") WITH (pages_per_range = 16)'
    )
    assert index.deconstruct() == (
        "audit_log.indexes.BrinIndex",
        (),
        {"fields": ["at"], "name": "log_at_brin", "pages_per_range": 16},
    )
    with pytest.raises(ValueError, match="pages_per_range"):
        BrinIndex(fields=["at"], name="x", pages_per_range=0)


@pytest.mark.django_db
def test_brin_index_minmax_multi_picks_each_columns_operator_class():
    index = BrinIndex(fields=["at", "transaction_id", "context_id"], name="log_multi", minmax_multi=True)
    with connection.schema_editor(collect_sql=True) as editor:
        statement = str(index.create_sql(AuditLogEntry, editor))
    assert statement == (
        'CREATE INDEX "log_multi" ON "testapp_auditlogentry" USING brin ("at" timestamptz_minmax_multi_ops, '
        '"transaction_id" int8_minmax_multi_ops, "context_id" uuid_minmax_multi_ops)'
    )
    assert index.deconstruct()[2] == {
        "fields": ["at", "transaction_id", "context_id"],
        "name": "log_multi",
        "minmax_multi": True,
    }
    assert index.opclasses == ()  # the model's index is left as declared; only its SQL names the classes


@pytest.mark.django_db
def test_brin_index_minmax_multi_refuses_a_column_type_without_such_a_class():
    index = BrinIndex(fields=["table_name"], name="log_names", minmax_multi=True)
    with (
        connection.schema_editor(collect_sql=True) as editor,
        pytest.raises(
            ValueError, match=r"testapp.AuditLogEntry.table_name: .*'varchar\(255\)'.*leave minmax_multi off"
        ),
    ):
        index.create_sql(AuditLogEntry, editor)
    with pytest.raises(ValueError, match="give it fields"):
        BrinIndex(models.F("at"), name="x", minmax_multi=True)


@pytest.mark.django_db
def test_log_table_has_the_documented_indexes():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT am.amname, pg_get_indexdef(i.indexrelid) FROM pg_index i "
            "JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am am ON am.oid = c.relam "
            "WHERE i.indrelid = 'testapp_auditlogentry'::regclass"
        )
        indexes = cursor.fetchall()
    assert sorted(kind for kind, _ in indexes) == ["brin", "brin", "brin", "btree", "btree", "btree", "btree"]
    definitions = " ".join(definition for _, definition in indexes)
    assert "(content_type_id, object_id, id)" in definitions
    for column, opclass in [("at", "timestamptz"), ("transaction_id", "int8"), ("context_id", "uuid")]:
        assert f"USING brin ({column} {opclass}_minmax_multi_ops) WITH (pages_per_range='32')" in definitions
    assert "(content_type_id, id) WHERE ((action)::text = 'DELETE'::text)" in definitions


@pytest.mark.django_db
def test_deletions_index_sql_and_deconstruction():
    index = DeletionsIndex(fields=["content_type", "id"], name="log_deleted")
    with connection.schema_editor(collect_sql=True) as editor:
        statement = str(index.create_sql(AuditLogEntry, editor))
    assert statement == (
        'CREATE INDEX "log_deleted" ON "testapp_auditlogentry" ("content_type_id", "id") WHERE "action" = \'DELETE\''
    )
    # The condition is the class's own, so migrations do not repeat it.
    assert index.deconstruct() == (
        "audit_log.indexes.DeletionsIndex",
        (),
        {"fields": ["content_type", "id"], "name": "log_deleted"},
    )
    with pytest.raises(ValueError, match="its own condition"):
        DeletionsIndex(fields=["id"], name="x", condition=Q(action="INSERT"))


@pytest.mark.django_db
def test_recover_list_reads_deletions_through_the_partial_index():
    """The recover list's query (newest deletions of one model) is served by the partial index."""
    from audit_log_admin.views.recover import deleted_entries

    query = deleted_entries(Invoice).order_by("-id")[:50].query
    sql, params = query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("SET enable_seqscan = off")  # a near-empty table would be read whole otherwise
        try:
            cursor.execute(f"EXPLAIN {sql}", params)
            plan = "\n".join(row[0] for row in cursor.fetchall())
        finally:
            cursor.execute("RESET enable_seqscan")
    deletions_index = next(index.name for index in AuditLogEntry._meta.indexes if isinstance(index, DeletionsIndex))
    assert any(name in plan for name in index_names(deletions_index)), plan
