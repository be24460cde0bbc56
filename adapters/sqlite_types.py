"""SQLite columns whose values have mixed storage classes.

SQLite stores each value with its own storage class whatever the column's declaration: a column
declared ``INTEGER`` may hold ``0.01`` or ``'nan'``. Either SQLite reader refuses such a table
(``TypeMismatchException``, see ``sqlite_reader.py``). Such a table is re-read as text and each
column cast back to the type its declaration implies; values that do not cast are junk, counted
and logged (``sqlite_values_not_cast``), never a reason to null a whole column.

Text keeps the 15 significant digits SQLite gives a REAL as text, so only tables that need this
path take it.
"""

from __future__ import annotations

import duckdb
import structlog

from celltable.adapters.duckdb_sql import ident
from celltable.adapters.sqlite_reader import Partition, SqliteReader

_BIGINT, _DOUBLE, _VARCHAR = "BIGINT", "DOUBLE", "VARCHAR"
_INTS = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT"}
_FLOATS = {"FLOAT", "DOUBLE", "REAL"}


def declared_types(sqlite: SqliteReader, table: str) -> list[tuple[str, str]]:
    """``(column, BIGINT | DOUBLE | VARCHAR)``: the type each column's declaration implies."""
    out = []
    for name, t in sqlite.columns(table):
        t = t.upper()
        kind = _BIGINT if t in _INTS else _DOUBLE if t in _FLOATS or t.startswith("DECIMAL") else _VARCHAR
        out.append((name, kind))
    return out


def stage_mixed(con: duckdb.DuckDBPyConnection, sqlite: SqliteReader, table: str,
                partition: Partition | None, target: str,
                where: str) -> tuple[tuple[tuple[str, int], ...], tuple[str, ...]]:
    """Create ``target`` from the SQLite table ``table`` (its ``partition``'s rows) read as
    text, each column cast to its declared type; integer columns holding non-integral numbers
    become DOUBLE.

    ``con`` must be a cursor of its own: the extension's text setting is changed on it for
    this read only.

    Returns:
        ``(column, values)`` for each column with values that did not cast (read as NULL), and
        the integer columns widened to DOUBLE: what the run report shows.
    """
    # A logger per call, not per module: rarely called, and never one a cached configuration
    # of an earlier caller keeps from structlog.testing.capture_logs.
    log = structlog.get_logger("celltable.sqlite")
    columns = declared_types(sqlite, table)
    sqlite.copy(con, table, "_text", partition=partition, text=True, temp=True)
    stats = []
    for name, kind in columns:
        c = ident(name)
        if kind == _BIGINT:
            d = f"TRY_CAST({c} AS DOUBLE)"  # not BIGINT: DuckDB rounds '0.5' to 1
            stats.append(f"count(*) FILTER (WHERE NOT isfinite({d}) OR {d} <> trunc({d}))")
        else:
            stats.append("0")
    fractional = con.execute(f"SELECT {', '.join(stats)} FROM _text").fetchone() if stats else ()
    types = [(n, _DOUBLE if k == _BIGINT and f else k) for (n, k), f in zip(columns, fractional, strict=True)]
    casts = ", ".join(f"TRY_CAST({ident(n)} AS {k}) AS {ident(n)}" for n, k in types) or "*"
    con.execute(f"CREATE OR REPLACE TABLE {target} AS SELECT {casts} FROM _text")
    junk = [f"count(*) FILTER (WHERE t.{ident(n)} IS NOT NULL AND s.{ident(n)} IS NULL)"
            for n, k in types if k != _VARCHAR]
    counts = (con.execute(f"SELECT {', '.join(junk)} FROM _text AS t POSITIONAL JOIN {target} AS s")
              .fetchone() if junk else ())
    numeric = [(n, k) for n, k in types if k != _VARCHAR]
    for (name, kind), n in zip(numeric, counts, strict=True):
        if n:
            log.warning("sqlite_values_not_cast", table=where, column=name, type=kind, values=n,
                        consequence="read as NULL")
    widened = [n for (n, k), (_, d) in zip(types, columns, strict=True) if k != d]
    log.info("sqlite_read_as_text", table=where, columns=len(columns),
             reason="values of mixed storage classes")
    if widened:
        log.warning("sqlite_integers_widened", table=where, columns=widened, type=_DOUBLE,
                    reason="declared integer, holding non-integral numbers")
    con.execute("DROP TABLE _text")
    not_cast = tuple((name, n) for (name, _), n in zip(numeric, counts, strict=True) if n)
    return not_cast, tuple(widened)
