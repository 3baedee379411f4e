"""The SQL of rebuilding a row from the log, and of writing it back: pure functions of names.

Beside ``sql.py`` as ``seal_sql.py`` is: the triggers' SQL stays in one module,
and this one holds only what ``audit_log.history`` runs. Identifiers go
through :func:`audit_log.sql.quote_name` / :func:`~audit_log.sql.quote_ident`;
values are always query parameters.

Values travel in the log's own form: ``to_jsonb()`` of the row wrote them, and
``jsonb_populate_record()`` is its inverse, so a logged value goes back into
its column (or is read as the column's type, for a model instance) through
PostgreSQL's own input functions: exact decimals, dates, ``bytea``, arrays,
JSON, ``'Infinity'`` and ``'NaN'`` alike, with no Python conversion between.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .sql import quote_ident, quote_name

#: Largest bigint: the open upper bound of a key's range of entries.
MAX_ID = 2**63 - 1


@dataclass(frozen=True)
class LogNames:
    """The log table and the columns the history reads, as the database spells them."""

    table: str
    id: str
    content_type: str
    object_id: str
    table_name: str
    action: str
    at: str
    changes: str
    transaction_id: str


def _past(log: LogNames, bound: str) -> str:
    column = {"before": log.id, "through": log.id, "at": log.at}[bound]
    operator = "<" if bound == "before" else "<="
    return f"{quote_ident(column)} {operator} %(bound)s"


def fold(log: LogNames, content_type: str, *, bound: str) -> str:
    """Return the query that folds one key's entries of one table into what is known at a moment.

    A "boundary" is an INSERT, a DELETE, or an UPDATE that changed the
    primary key (logged under the new key: it starts the object's life under
    this key). One row:

    * the newest boundary at or before the moment: id, action, its values
      (the row of an INSERT or DELETE, the new values of a key change) and,
      for a key change, the old key;
    * the newest entry at or before the moment;
    * the later value of every column the UPDATEs since that boundary changed
      (``jsonb_object_agg`` ordered by id keeps the last);
    * the newest INSERT or key change of all, if it is a key change after the
      moment: its id and the old key (the object holding the key now held
      the old one then);
    * the first boundary after the moment: its action, and its row if it is a
      DELETE; and the earlier value of every column the UPDATEs between the
      moment and it changed (ordered the other way: the first). These tell
      what an object that predates its log was like.

    The entries are read once, in the order of the per-object index.

    Parameters: ``ct`` (when ``content_type`` is ``%(ct)s``), ``key``,
    ``table``, ``pk`` (the key column), ``low`` and ``high`` (the ids of this
    key's part of the object's life), ``bound`` (the moment).

    Args:
        log: The log table's names.
        content_type: SQL giving the content type id (a parameter or a subquery).
        bound: ``"at"`` (a time, inclusive), ``"through"`` (an entry id,
            inclusive) or ``"before"`` (an entry id, exclusive).

    Returns:
        The query.
    """
    id_, action, changes = quote_ident(log.id), quote_ident(log.action), quote_ident(log.changes)
    return f"""
WITH e AS MATERIALIZED (
  SELECT {id_} AS id, {action} AS action, {changes} AS changes,
    ({action} <> 'UPDATE' OR {changes} ? %(pk)s) AS boundary, {_past(log, bound)} AS past
  FROM {quote_name(log.table)}
  WHERE {quote_ident(log.content_type)} = {content_type} AND {quote_ident(log.object_id)} = %(key)s
    AND {quote_ident(log.table_name)} = %(table)s AND {id_} >= %(low)s AND {id_} < %(high)s
),
lo AS (SELECT max(id) AS id FROM e WHERE past AND boundary),
hi AS (SELECT min(id) AS id FROM e WHERE NOT past AND boundary AND id > coalesce((SELECT id FROM lo), 0)),
st AS (SELECT max(id) AS id FROM e WHERE boundary AND action <> 'DELETE'),
lo_e AS (SELECT e.action, e.changes FROM e WHERE e.id = (SELECT id FROM lo)),
hi_e AS (SELECT e.action, e.changes FROM e WHERE e.id = (SELECT id FROM hi)),
st_e AS (SELECT e.action, e.changes, e.past FROM e WHERE e.id = (SELECT id FROM st)),
forward AS (
  SELECT jsonb_object_agg(kv.key, kv.value -> 1 ORDER BY e.id)::text AS v
  FROM e, jsonb_each(e.changes) AS kv
  WHERE e.past AND NOT e.boundary AND e.id > coalesce((SELECT id FROM lo), 0)
),
backward AS (
  SELECT jsonb_object_agg(kv.key, kv.value -> 0 ORDER BY e.id DESC)::text AS v
  FROM e, jsonb_each(e.changes) AS kv
  WHERE NOT e.past AND NOT e.boundary AND e.id > coalesce((SELECT id FROM lo), 0)
    AND e.id < coalesce((SELECT id FROM hi), {MAX_ID})
)
-- Every piece is one row computed once: the planner's estimate stays small, so no JIT
-- compilation (which cost ten times the query itself) is triggered.
SELECT
  (SELECT id FROM lo), (SELECT action FROM lo_e),
  (SELECT (CASE WHEN action = 'UPDATE'
    THEN (SELECT jsonb_object_agg(kv.key, kv.value -> 1) FROM jsonb_each(changes) AS kv)
    ELSE changes END)::text FROM lo_e),
  (SELECT (CASE WHEN action = 'UPDATE' THEN changes -> %(pk)s -> 0 END)::text FROM lo_e),
  (SELECT max(id) FROM e WHERE past),
  (SELECT v FROM forward),
  (SELECT CASE WHEN action = 'UPDATE' AND NOT past THEN (SELECT id FROM st) END FROM st_e),
  (SELECT (CASE WHEN action = 'UPDATE' AND NOT past THEN changes -> %(pk)s -> 0 END)::text FROM st_e),
  (SELECT action FROM hi_e),
  (SELECT CASE WHEN action = 'DELETE' THEN changes::text END FROM hi_e),
  (SELECT v FROM backward)
"""


def fold_links(log: LogNames, content_type: str, *, bound: str, object_id_type: str) -> str:
    """Return the query that rebuilds an object's many-to-many sets at a moment from its link entries.

    The newest entry at or before the moment that mentions a (table, target)
    pair decides whether the link was there: an INSERT adds it, a DELETE
    removes it, an UPDATE of the target column moves it from the old target
    to the new. Returns ``(ordinal of the table, target as JSON text)`` of
    each link present.

    Parameters: ``ct`` (when ``content_type`` is ``%(ct)s``), ``tables`` and
    ``columns`` (the link tables and their target columns, in the same
    order), ``keys``, ``lows`` and ``highs`` (the parts of the object's life:
    its key and range of ids in each), ``bound`` (the moment) and
    ``transaction`` (a transaction whose link DELETEs are skipped, such as
    the deletion of the object itself, or NULL).

    Args:
        log: The log table's names.
        content_type: SQL giving the content type id.
        bound: As for :func:`fold`.
        object_id_type: The SQL type of the log's object id column.

    Returns:
        The query.
    """
    id_, action, changes = quote_ident(log.id), quote_ident(log.action), quote_ident(log.changes)
    return f"""
SELECT ord, target::text FROM (
  SELECT DISTINCT ON (m.ord, t.target) m.ord, t.target, t.present
  FROM unnest(%(tables)s::text[], %(columns)s::text[]) WITH ORDINALITY AS m(tbl, col, ord)
  CROSS JOIN unnest(%(keys)s::text[], %(lows)s::bigint[], %(highs)s::bigint[]) AS s(key, low, high)
  JOIN {quote_name(log.table)} AS e
    ON e.{quote_ident(log.content_type)} = {content_type} AND e.{quote_ident(log.object_id)} = s.key::{object_id_type}
    AND e.{quote_ident(log.table_name)} = m.tbl AND e.{id_} >= s.low AND e.{id_} < s.high
  CROSS JOIN LATERAL (VALUES
    (CASE WHEN e.{action} = 'UPDATE' THEN e.{changes} -> m.col -> 1 ELSE e.{changes} -> m.col END,
     e.{action} <> 'DELETE'),
    (CASE WHEN e.{action} = 'UPDATE' THEN e.{changes} -> m.col -> 0 END, false)
  ) AS t(target, present)
  WHERE e.{_past(log, bound)} AND t.target IS NOT NULL
    AND NOT (e.{action} = 'DELETE' AND e.{quote_ident(log.transaction_id)} IS NOT DISTINCT FROM %(transaction)s)
  ORDER BY m.ord, t.target, e.{id_} DESC
) AS latest
WHERE present
"""


def read_as_row(table: str, columns: Sequence[str]) -> str:
    """Return the query that reads logged values (parameter: a JSON object) as the columns of ``table``."""
    selected = ", ".join(f"r.{quote_ident(column)}" for column in columns)
    return f"SELECT {selected} FROM jsonb_populate_record(NULL::{quote_name(table)}, %s::jsonb) AS r"


#: The table's columns: name, NOT NULL, has a default (or identity), generated, type (parameter: quoted table).
TABLE_COLUMNS = """
SELECT a.attname, a.attnotnull, a.atthasdef OR a.attidentity <> '', a.attgenerated <> '',
  format_type(a.atttypid, a.atttypmod)
FROM pg_attribute AS a
WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""


def compare_row(table: str, pk: str, columns: Sequence[tuple[str, bool]], *, lock: bool = True) -> str:
    """Return the query that locks one row and tells which columns differ from logged values.

    One row (none if the key is not there): ``true``, then one boolean per
    column, ``IS DISTINCT FROM`` as the trigger compares (through the text
    form for types without equality). Parameters: the JSON object, the key.

    Args:
        table: The table.
        pk: Its key column.
        columns: ``(column, comparable)`` pairs.
        lock: Lock the row (``FOR UPDATE``), to write it next. Without, the
            row's values in the log's form (``to_jsonb``, as text) come last,
            for showing what would change.
    """
    qtable = quote_name(table)
    tests = []
    for column, comparable in columns:
        old, new = f"t.{quote_ident(column)}", f"r.{quote_ident(column)}"
        tests.append(f"{old} IS DISTINCT FROM {new}" if comparable else f"{old}::text IS DISTINCT FROM {new}::text")
    selected = ["true", *tests] if lock else ["true", *tests, "to_jsonb(t)::text"]
    return (
        f"SELECT {', '.join(selected)} "
        f"FROM {qtable} AS t, jsonb_populate_record(NULL::{qtable}, %s::jsonb) AS r "
        f"WHERE t.{quote_ident(pk)} = %s" + (" FOR UPDATE OF t" if lock else "")
    )


def update_row(table: str, pk: str, columns: Sequence[str]) -> str:
    """Return one UPDATE of ``columns`` from logged values (parameters: the JSON object, the key)."""
    qtable = quote_name(table)
    assignments = ", ".join(f"{quote_ident(column)} = r.{quote_ident(column)}" for column in columns)
    return (
        f"UPDATE {qtable} AS t SET {assignments} FROM jsonb_populate_record(NULL::{qtable}, %s::jsonb) AS r "
        f"WHERE t.{quote_ident(pk)} = %s"
    )


def insert_row(table: str, logged: Sequence[str], defaulted: Sequence[str]) -> str:
    """Return one INSERT of a row from logged values and given defaults.

    Parameters: one per ``defaulted`` column, then the JSON object of the
    logged values. Identity columns take the logged key (``OVERRIDING SYSTEM
    VALUE``).
    """
    qtable = quote_name(table)
    names = ", ".join(quote_ident(column) for column in [*logged, *defaulted])
    values = ", ".join([*(f"r.{quote_ident(column)}" for column in logged), *("%s" for _ in defaulted)])
    return (
        f"INSERT INTO {qtable} ({names}) OVERRIDING SYSTEM VALUE "
        f"SELECT {values} FROM jsonb_populate_record(NULL::{qtable}, %s::jsonb) AS r"
    )


def existing_keys(table: str, column: str) -> str:
    """Return the query that finds which of some keys exist, and keeps them (parameter: a list of keys).

    ``FOR KEY SHARE`` keeps the rows from being deleted until the transaction
    ends, so a foreign key checked here still holds at commit.
    """
    qcolumn = quote_ident(column)
    return f"SELECT t.{qcolumn} FROM {quote_name(table)} AS t WHERE t.{qcolumn} = ANY(%s) FOR KEY SHARE"
