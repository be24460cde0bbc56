"""Rendering the domain's queries as DuckDB SQL. Every name is quoted; no name is pasted raw."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import duckdb
import pyarrow as pa

from celltable.domain.errors import SchemaError
from celltable.domain.join import ChunkQuery, SelectColumn
from celltable.domain.presets import IMAGE
from celltable.domain.schema import DataType

SQL_TYPES = {
    DataType.BOOL: "BOOLEAN",
    DataType.INT64: "BIGINT",
    DataType.FLOAT32: "FLOAT",
    DataType.FLOAT64: "DOUBLE",
    DataType.STRING: "VARCHAR",
    DataType.NULL: "VARCHAR",
}

_INTS = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT",
         "UINTEGER", "UBIGINT", "UHUGEINT"}
_FLOAT32 = {"FLOAT", "REAL", "FLOAT4"}  # DuckDB's REAL is its 4-byte FLOAT
_FLOATS = {"DOUBLE", "FLOAT8"}

def ident(name: str) -> str:
    """A quoted identifier.

    Raises:
        SchemaError: The name holds a NUL character, which no SQL statement can carry.
    """
    if "\0" in name:
        raise SchemaError(
            f"a column or table is named {name!r}, with a NUL character (\\x00) that SQL "
            "cannot name; rename it in the source"
        )
    return '"' + name.replace('"', '""') + '"'


def literal(text: str) -> str:
    """A quoted string literal."""
    return "'" + text.replace("'", "''") + "'"


def arrow_reader(con: duckdb.DuckDBPyConnection, sql: str, rows: int) -> pa.RecordBatchReader:
    """The result of ``sql`` as Arrow batches of ``rows`` rows, read as they are fetched.

    Through ``execute``, not a relation: a relation's reader reports DuckDB's errors as
    pyarrow's OSError, and the streams tell a type mismatch from other errors by type. DuckDB 2
    warns that this path copies each batch once more (a batch is a few MB); that warning alone
    is silenced, for the process (``catch_warnings`` is not safe across threads; adding the
    same filter again replaces it).
    """
    warnings.filterwarnings("ignore", "Arrow output on a DB-API result", UserWarning)
    return con.execute(sql).to_arrow_reader(rows)


def error_summary(error: Exception) -> str:
    """DuckDB's message without its multi-line sniffer dump: the part a user can act on."""
    lines = [ln.strip() for ln in str(error).splitlines()
             if ln.strip() and not ln.startswith("Original Line:")]  # a whole CSV row: noise
    # DuckDB's own hints name its settings (``* SET sqlite_all_varchar=true ...``), which a
    # user of celltable cannot set: drop them.
    text = " ".join(lines[:2]) if lines else type(error).__name__
    return text.split(" * SET ", 1)[0].strip()


def data_type(duckdb_type: str) -> DataType:
    """The logical type of a DuckDB column type."""
    t = duckdb_type.upper()
    if t in _INTS:
        return DataType.INT64
    if t in _FLOAT32:
        return DataType.FLOAT32
    if t in _FLOATS or t.startswith("DECIMAL"):
        return DataType.FLOAT64
    if t == "BOOLEAN":
        return DataType.BOOL
    if t == '"NULL"' or t == "NULL":
        return DataType.NULL
    return DataType.STRING


def _select(col: SelectColumn, aliases: dict[str, str]) -> str:
    sql_type = SQL_TYPES[col.type]
    if col.constant is not None:
        value = literal(col.constant)
    elif col.source is None or col.table is None:
        value = "NULL"
    else:
        value = f"{aliases[col.table]}.{ident(col.source)}"
    return f"CAST({value} AS {sql_type}) AS {ident(col.output)}"


def with_views(views: Sequence[tuple[str, Sequence[SelectColumn]]]) -> str:
    """``WITH name AS (SELECT ... FROM table), ...`` for a user's SQL: each view the given
    columns of one table (empty when there are none)."""
    ctes = []
    for name, columns in views:
        table = next((c.table for c in columns if c.table), None)
        if table is None:
            continue
        selects = ", ".join(_select(c, {table: ident(table)}) for c in columns)
        ctes.append(f"{ident(name)} AS (SELECT {selects} FROM {ident(table)})")
    return f"WITH {', '.join(ctes)} " if ctes else ""


def _in_chunk(alias: str, key: str, query: ChunkQuery, *, with_nulls: bool) -> list[str]:
    """Conditions keeping rows of the chunk's images; rows with a NULL key go to the first chunk."""
    column = f"{alias}.{ident(key)}"
    chunk = query.chunk
    conds = []
    if chunk.lower is not None:
        conds.append(f"{column} >= {int(chunk.lower)}")
    if chunk.upper is not None:
        upper = f"{column} < {int(chunk.upper)}"
        conds.append(f"({upper} OR {column} IS NULL)" if with_nulls and chunk.lower is None else upper)
    return conds


def _joins(query: ChunkQuery, aliases: dict[str, str], kind: str) -> list[str]:
    """The joins of a chunk query; ``aliases`` gains an alias per joined table."""
    if query.join is None:
        return []
    key = ident(query.join.image_key)
    joins = []
    for i, step in enumerate(query.join.steps, start=1):
        alias = f"t{i}"
        aliases[step.parent] = alias
        on = [
            f"{alias}.{key} = {aliases[step.child]}.{key}",
            f"{alias}.{ident(step.parent_object_number)} = {aliases[step.child]}.{ident(step.column)}",
            *_in_chunk(alias, query.image_key, query, with_nulls=False),
        ]
        joins.append(f"{kind} JOIN {ident(step.parent)} AS {alias} ON " + " AND ".join(on))
    return joins


def _from(query: ChunkQuery, joins: list[str], key_present: bool) -> str:
    sql = f" FROM {ident(query.table)} AS t0 " + " ".join(joins)
    where = _in_chunk("t0", query.image_key, query, with_nulls=True) if key_present else []
    return sql + (" WHERE " + " AND ".join(where) if where else "")


def _image_join(query: ChunkQuery, aliases: dict[str, str]) -> list[str]:
    """The image row's left join, when the query has one; ``aliases`` gains ``ti``."""
    if query.join is None or not query.join.with_image:
        return []
    aliases[IMAGE] = "ti"
    on = [f"ti.{ident(query.image_key)} = t0.{ident(query.image_key)}",
          *_in_chunk("ti", query.image_key, query, with_nulls=False)]
    return [f"LEFT JOIN {ident(IMAGE)} AS ti ON " + " AND ".join(on)]


def render_chunk(query: ChunkQuery, key_present: bool = True) -> str:
    """The SELECT of one chunk: base rows with every partner (inner joins), and the image row
    when there is one (left join). Rows come back unordered: sorting wide rows costs more in
    the database than sorting their keys afterwards."""
    aliases = {query.table: "t0"}
    joins = _joins(query, aliases, "INNER")
    joins += _image_join(query, aliases)
    selects = ", ".join(_select(c, aliases) for c in query.columns)
    return f"SELECT {selects}" + _from(query, joins, key_present)


def render_rows(query: ChunkQuery, row: str,
                order: Sequence[tuple[str, str]]) -> tuple[str, tuple[str, ...]]:
    """The SELECT of one chunk's join on its keys alone: for every row of the join, the
    number (column ``row``) of the row it takes from each table, NULL where a partner is
    missing (partners are left joined, so missing ones can be counted), in output order:
    ``order``'s ``(table, column)`` pairs, then the row numbers (a stable order for ties).
    Returns the SQL and the tables whose row numbers it selects, in that order."""
    aliases = {query.table: "t0"}
    joins = _joins(query, aliases, "LEFT")
    joins += _image_join(query, aliases)
    rows = [f"{alias}.{ident(row)}" for alias in aliases.values()]
    keys = [f"{aliases[table]}.{ident(column)} NULLS FIRST" for table, column in order]
    selects = ", ".join(f"{r} AS r{i}" for i, r in enumerate(rows))
    sql = f"SELECT {selects}" + _from(query, joins, key_present=True)
    return sql + " ORDER BY " + ", ".join([*keys, *rows]), tuple(aliases)


def render_missing(query: ChunkQuery) -> str:
    """Counts for one chunk of a join, reading key columns only: ``dropped`` base rows lacking
    any partner, then for each join step the base rows lacking that partner while having the
    step's child (down a chain, Cytoplasm -> Cells -> Nuclei, a row without its cell is counted
    once, under cells, not again under nuclei)."""
    assert query.join is not None
    aliases = {query.table: "t0"}
    joins = _joins(query, aliases, "LEFT")
    found = {query.table: "TRUE"}  # the condition that a table's row was found
    missing = []
    for i, step in enumerate(query.join.steps, start=1):
        absent = f"t{i}.{ident(step.parent_object_number)} IS NULL"
        missing.append(f"({found[step.child]} AND {absent})")
        found[step.parent] = f"t{i}.{ident(step.parent_object_number)} IS NOT NULL"
    counts = [f"count(*) FILTER (WHERE {' OR '.join(missing)})"] + [
        f"count(*) FILTER (WHERE {m})" for m in missing]
    return f"SELECT {', '.join(counts)}" + _from(query, joins, key_present=True)
