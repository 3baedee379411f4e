"""Unit tests of the SQL generator: pure functions, no database."""

import pytest

from audit_log import sql


def spec(**overrides):
    values = {
        "table": "shop_order",
        "pk": "id",
        "columns": (sql.Column("id"), sql.Column("status"), sql.Column("secret", masked=True)),
        "excluded": ("seen_at",),
        "log_table": "app_auditlogentry",
        "log_columns": sql.LogColumns(),
        "object_id_type": "text",
        "content_type": sql.ContentTypeTable("django_content_type", "shop", "order"),
        "context": sql.ContextColumns(
            columns=(("context_id", "uuid"), ("context_type", "varchar(64)"), ("context", "jsonb")),
        ),
    }
    values.update(overrides)
    return sql.AuditSpec(**values)


def test_quote_ident_doubles_embedded_quotes():
    assert sql.quote_ident('Weird "Name"-Tbl') == '"Weird ""Name""-Tbl"'


def test_quote_ident_keeps_capitals_and_spaces():
    assert sql.quote_ident("CamelCol with space") == '"CamelCol with space"'


@pytest.mark.parametrize("name", ["", "a\x00b"])
def test_quote_ident_rejects_empty_and_nul(name):
    with pytest.raises(ValueError, match="identifier"):
        sql.quote_ident(name)


def test_quote_literal_doubles_single_quotes():
    assert sql.quote_literal("it's") == "'it''s'"


def test_quote_literal_uses_escape_string_for_backslashes():
    assert sql.quote_literal("a\\'b") == "E'a\\\\''b'"


def test_object_name_is_prefixed_and_deterministic():
    assert sql.function_name("shop_order") == "audit_log_fn_shop_order"
    assert sql.function_name("shop_order") == sql.function_name("shop_order")


def test_object_name_cuts_long_names_to_63_bytes_with_a_hash():
    long_a = "x" * 70 + "a"
    long_b = "x" * 70 + "b"
    name_a, name_b = sql.function_name(long_a), sql.function_name(long_b)
    assert len(name_a.encode()) <= sql.MAX_IDENTIFIER_BYTES
    assert name_a != name_b
    assert name_a.startswith("audit_log_fn_xxx")


def test_object_name_counts_bytes_not_characters():
    name = sql.function_name("ø" * 40)
    assert len(name.encode()) <= sql.MAX_IDENTIFIER_BYTES


def test_function_body_quotes_every_name():
    body = sql.function_body(
        spec(
            table='We"ird Tbl',
            pk="ID",
            columns=(sql.Column("ID"), sql.Column('Camel"Col')),
            excluded=(),
            log_table='log "entries"',
        )
    )
    assert '"We""ird Tbl"' in body
    assert '"Camel""Col"' in body
    assert '"log ""entries"""' in body
    assert "jsonb_build_object('Camel\"Col'" in body


def test_function_body_masks_and_excludes():
    body = sql.function_body(spec())
    assert "- ARRAY['seen_at']::text[]" in body
    assert f"ELSE '{sql.MASKED_VALUE}' END" in body
    assert '"seen_at" IS DISTINCT FROM' not in body


def test_function_body_compares_types_without_equality_as_text():
    body = sql.function_body(spec(columns=(sql.Column("id"), sql.Column("doc", comparable=False))))
    assert '_al_o."doc"::text IS DISTINCT FROM _al_n."doc"::text' in body


def test_function_body_refuses_writes_without_context_only_when_required():
    assert "RAISE EXCEPTION" not in sql.function_body(spec())
    body = sql.function_body(spec(require_context=True))
    assert body.count("RAISE EXCEPTION") == 4  # insert, update, delete, truncate
    assert "AUDIT_LOG_REQUIRE_CONTEXT" in body


def test_function_body_rejects_a_name_containing_the_dollar_quote_tag():
    with pytest.raises(ValueError, match="audit_log"):
        sql.function_body(spec(table="x$audit_log$y"))


def test_create_function_pins_planner_settings():
    statement = sql.create_function(spec())
    assert "SET jit = off SET enable_nestloop = off SET enable_mergejoin = off" in statement
    assert statement.startswith('CREATE OR REPLACE FUNCTION "audit_log_fn_shop_order"()')


def test_create_triggers_are_statement_level_with_transition_tables():
    statements = sql.create_triggers("Weird Name-Tbl")
    assert len(statements) == 4
    insert, update, delete, truncate = statements
    assert 'AFTER INSERT ON "Weird Name-Tbl" REFERENCING NEW TABLE AS "audit_log_new" FOR EACH STATEMENT' in insert
    assert 'REFERENCING OLD TABLE AS "audit_log_old" NEW TABLE AS "audit_log_new"' in update
    assert 'AFTER DELETE ON "Weird Name-Tbl" REFERENCING OLD TABLE AS "audit_log_old"' in delete
    assert truncate.startswith('CREATE OR REPLACE TRIGGER "audit_log_truncate" BEFORE TRUNCATE')


def test_uninstall_tolerates_missing_objects():
    statements = sql.uninstall("shop_order")
    assert all("IF EXISTS" in statement for statement in statements)
    assert statements[-1] == 'DROP FUNCTION IF EXISTS "audit_log_fn_shop_order"()'


def test_set_context_is_a_transaction_local_setting_with_a_quoted_payload():
    assert sql.set_context('{"a":"it\'s"}') == "SET LOCAL audit_log.context = '{\"a\":\"it''s\"}'"
    assert sql.set_context('{"a":"\\\\"}') == 'SET LOCAL audit_log.context = E\'{"a":"\\\\\\\\"}\''
    assert sql.clear_context() == "SET LOCAL audit_log.context = ''"


def test_function_body_reads_the_context_setting_as_a_typed_record():
    body = sql.function_body(spec())
    assert "current_setting('audit_log.context', true)" in body
    assert (
        'jsonb_to_record(_al_raw::jsonb) AS _al_ctx("context_id" uuid, "context_type" varchar(64), "context" jsonb)'
        in body
    )


@pytest.mark.parametrize(
    ("name", "parts"),
    [
        ('"otherschema"."book"', ("otherschema", "book")),
        ('"quoted_id"', ("quoted_id",)),
        ('"a ""quoted"" name"."t"', ('a "quoted" name', "t")),
        ("my.table", ("my.table",)),  # unquoted: one identifier with a dot, as Django treats it
        ('"unbalanced', ('"unbalanced',)),
        ('"a"b"', ('"a"b"',)),
        ('"a".b"', ('"a".b"',)),
    ],
)
def test_name_parts_reads_names_django_leaves_quoted(name, parts):
    assert sql.name_parts(name) == parts


def test_quote_name_quotes_each_part_once():
    assert sql.quote_name('"otherschema"."book"') == '"otherschema"."book"'
    assert sql.quote_name('"quoted_id"') == '"quoted_id"'
    assert sql.quote_name('Weird "Name"') == '"Weird ""Name"""'


def test_trigger_function_of_a_schema_qualified_table_lives_beside_it():
    assert sql.function_reference('"s"."book"') == '"s"."audit_log_fn_book"'
    assert sql.function_reference("book") == '"audit_log_fn_book"'
    insert = sql.create_triggers('"s"."book"')[0]
    assert 'ON "s"."book" REFERENCING' in insert
    assert insert.endswith('EXECUTE FUNCTION "s"."audit_log_fn_book"()')
    assert sql.uninstall('"s"."book"')[-1] == 'DROP FUNCTION IF EXISTS "s"."audit_log_fn_book"()'
