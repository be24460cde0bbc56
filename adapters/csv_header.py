"""A CSV header repeating a name, named as celltable names every collision: the first keeps the
name, later ones get ``_2``, ``_3`` ... (DuckDB's reader would number them ``_1``, ``_2``)."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import duckdb

from celltable.adapters.duckdb_sql import literal

HEADER_BYTES = 1 << 24
"""Bytes of a header read at most (CellProfiler headers reach a few hundred kB)."""


def raw_header(path: str) -> list[str] | None:
    """The names in a CSV file's first line, split by its likeliest delimiter; None when it
    cannot be read."""
    try:
        with Path(path).open("rb") as f:
            line = f.readline(HEADER_BYTES)
        text = line.decode("utf-8-sig").rstrip("\r\n")
    except (OSError, UnicodeDecodeError):
        return None
    delimiter = max(",;\t|", key=text.count)
    return next(csv.reader([text], delimiter=delimiter), None)


def repeated(names: list[str]) -> list[str] | None:
    """``names`` with repeats numbered ``_2``, ``_3`` ... (skipping names taken); None when no
    name repeats."""
    if len(set(names)) == len(names):
        return None
    taken, out = set(names), []
    seen: set[str] = set()
    for name in names:
        unique, n = name, 1
        while unique in seen or (unique != name and unique in taken):
            n += 1
            unique = f"{name}_{n}"
        seen.add(unique)
        out.append(unique)
    return out


def with_names(con: duckdb.DuckDBPyConnection, source: str, path: str) -> str:
    """``source`` (a ``read_csv(...)`` expression) naming a repeated header's columns as
    :func:`repeated` does; unchanged when no name repeats."""
    names = repeated(raw_header(path) or [])
    if names is None:
        return source
    spec = ", ".join(literal(n) for n in names)
    if "columns={" not in source.replace(" ", ""):
        return f"{source[:-1]}, names = [{spec}])"
    described = con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()
    if len(described) != len(names):
        return source
    columns = ", ".join(f"{literal(n)}: {literal(t)}" for n, (_, t, *_) in
                        zip(names, described, strict=True))
    return re.sub(r"columns\s*=\s*\{.*?\}(?=\s*,\s*\w+\s*=|\s*\)$)",
                  lambda _: "columns={" + columns + "}", source, count=1, flags=re.S)
