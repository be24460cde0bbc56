"""Checking an output against what celltable recorded when it wrote it.

Conversion records, in the file's metadata, the provenance (rows out, the columns and their
types; built and parsed in ``celltable.domain.provenance``) and a checksum (null counts per
column and a digest of the key columns, computed from the rows as they were written).
Validation re-reads the rows, recomputes the same figures and compares: the rules here are
pure; reading is the output reader's job.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from celltable.domain.errors import ValidationError
from celltable.domain.naming import OBJECT_NUMBER, TABLE_NUMBER
from celltable.domain.provenance import FORMAT, PRODUCER_VERSION_KEY, current_format

# What a file records of its making is read where it is built; importable from here too.
from celltable.domain.provenance import PROVENANCE_KEY as PROVENANCE_KEY
from celltable.domain.provenance import provenance_of as provenance_of
from celltable.domain.schema import Column

KEY_COLUMNS = (TABLE_NUMBER, "Metadata_ImageNumber", OBJECT_NUMBER)
"""The identifying columns of an output, digested in this order when present."""

CHECKSUM_KEY = "celltable.checksum"
COLUMNS_KEY = "celltable.columns"
MANIFEST_NAME = "_celltable_manifest.json"
"""The file naming a folder output's files (``--no-join``, ``--partition-by plate``); its
leading ``_`` makes Arrow, Spark and pandas pass over it when they read the folder as a
dataset."""


@dataclass(frozen=True, slots=True)
class Checksum:
    """Figures of a table's rows, computed the same way when writing and when validating.

    Attributes:
        rows: Rows digested.
        key_columns: The columns digested (those of ``Metadata_TableNumber``,
            ``Metadata_ImageNumber``, ``Metadata_ObjectNumber`` the table has).
        key_digest: SHA-256 of the key columns' values in row order.
        null_counts: ``(column, nulls)`` for every column.
        algorithm: Names the digest's rules, so a future change is detected, not misread.
    """

    rows: int
    key_columns: tuple[str, ...]
    key_digest: str
    null_counts: tuple[tuple[str, int], ...]
    algorithm: str = "celltable-keys-sha256-v1"

    def to_json(self) -> str:
        return json.dumps({
            "algorithm": self.algorithm, "rows": self.rows, "key_columns": list(self.key_columns),
            "key_digest": self.key_digest, "null_counts": [list(p) for p in self.null_counts],
        })

    @classmethod
    def from_json(cls, text: str) -> Checksum:
        d = json.loads(text)
        return cls(int(d["rows"]), tuple(d["key_columns"]), str(d["key_digest"]),
                   tuple((str(k), int(v)) for k, v in d["null_counts"]), str(d["algorithm"]))


@dataclass(frozen=True, slots=True)
class ColumnDigests:
    """Digests of every column's values per row group (see ``adapters/column_digest.py``).

    Attributes:
        algorithm: Names the rules, so a future change is detected, not misread.
        group_rows: Rows of each row group, in order.
        groups: Per row group, a digest over all its columns.
        columns: Per column, ``(name, digest over all row groups)``.
    """

    algorithm: str
    group_rows: tuple[int, ...]
    groups: tuple[str, ...]
    columns: tuple[tuple[str, str], ...]

    def to_json(self) -> str:
        return json.dumps({"algorithm": self.algorithm, "group_rows": list(self.group_rows),
                           "groups": list(self.groups), "columns": [list(c) for c in self.columns]})

    @classmethod
    def from_json(cls, text: str) -> ColumnDigests:
        d = json.loads(text)
        return cls(str(d["algorithm"]), tuple(int(n) for n in d["group_rows"]),
                   tuple(str(g) for g in d["groups"]),
                   tuple((str(n), str(h)) for n, h in d["columns"]))


@dataclass(frozen=True, slots=True)
class OutputScan:
    """What an output file holds, as re-read: the footer's row count, its columns, its key-value
    metadata, and the checksum recomputed from its rows (None when not asked for)."""

    path: str
    footer_rows: int
    columns: tuple[Column, ...]
    metadata: tuple[tuple[str, str], ...]
    checksum: Checksum | None = None
    column_digests: ColumnDigests | None = None


@dataclass(frozen=True, slots=True)
class Check:
    """One comparison: ``ok`` is None when it could not be made (an older file lacks the
    figure)."""

    name: str
    ok: bool | None
    detail: str


@dataclass(frozen=True, slots=True)
class TableValidation:
    """The checks of one output file."""

    path: str
    rows: int
    columns: int
    preset: str
    producer_version: str
    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        return all(c.ok is not False for c in self.checks)


@dataclass(frozen=True, slots=True)
class ValidationReport:
    """The checks of every file of an output (one, or one per table with ``--no-join``)."""

    dest_path: str
    tables: tuple[TableValidation, ...]

    @property
    def ok(self) -> bool:
        return all(t.ok for t in self.tables)


def recorded_checksum(path: str, metadata: Mapping[str, str]) -> Checksum | None:
    """The checksum written with the file; None for files written before checksums existed."""
    return _record(path, metadata, CHECKSUM_KEY, Checksum.from_json)


def recorded_columns(path: str, metadata: Mapping[str, str]) -> ColumnDigests | None:
    """The column digests written with the file; None for files written before them."""
    return _record(path, metadata, COLUMNS_KEY, ColumnDigests.from_json)


R = TypeVar("R")


def _record(path: str, metadata: Mapping[str, str], key: str, parse: Callable[[str], R]
            ) -> R | None:
    text = metadata.get(key)
    if text is None:
        return None
    try:
        return parse(text)
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise ValidationError(f"{path}: its {key} metadata cannot be read ({e})") from e


def _absent(prov: Mapping[str, object], what: str) -> Check:
    """A record the file lacks: damage if its format always has it, else an older file."""
    if current_format(prov):
        return Check(what, False, f"missing from the metadata, although this file's format "
                                  f"({prov.get('format')}) always records it: the metadata was "
                                  "edited or damaged")
    return Check(what, None, "not recorded (written by an older celltable)")


def compare(scan: OutputScan, prov: Mapping[str, object], recorded: Checksum | None,
            columns: ColumnDigests | None = None) -> TableValidation:
    """The checks of one file: rows, schema, null counts, key digest and column digests
    against the record."""
    checks = [_rows(scan, prov, recorded)]
    schema = prov.get("schema")
    if isinstance(schema, list):
        expected = [(str(n), str(t)) for n, t in schema]
        found = [(c.name, c.type.value) for c in scan.columns]
        checks.append(Check("schema", expected == found, _schema_detail(expected, found)))
    else:
        checks.append(_absent(prov, "schema"))
    if recorded is None or scan.checksum is None:
        checks.append(_absent(prov, "checksum"))
    elif recorded.algorithm != scan.checksum.algorithm:
        checks.append(Check("checksum", None, f"recorded with {recorded.algorithm}, which this "
                                              "celltable cannot recompute"))
    else:
        checks.append(_nulls(recorded, scan.checksum))
        checks.append(_keys(recorded, scan.checksum))
    if columns is None or scan.column_digests is None:
        checks.append(_absent(prov, "column digests"))
    else:
        checks.append(_column_check(columns, scan.column_digests))
    if prov.get("join_sql"):
        checks.append(_custom_join(scan))
    meta = dict(scan.metadata)
    return TableValidation(
        path=scan.path,
        rows=scan.footer_rows,
        columns=len(scan.columns),
        preset=str(prov.get("preset", "?")),
        producer_version=meta.get(PRODUCER_VERSION_KEY, "?"),
        checks=tuple(checks),
    )


def _custom_join(scan: OutputScan) -> Check:
    """What validating a ``join_sql`` output cannot check: its columns and rows are the SQL's."""
    names = {c.name for c in scan.columns}
    lacking = [k for k in KEY_COLUMNS if k not in names]
    detail = ("written by --join-sql: which rows were joined, and the column names, are the "
              "SQL's own, so they are not checked against the preset's join")
    if lacking:
        detail += f"; the key digest lacks {', '.join(lacking)} (not in the output)"
    return Check("custom join", None, detail)


def _rows(scan: OutputScan, prov: Mapping[str, object], recorded: Checksum | None) -> Check:
    expected = int(prov["rows_out"])  # type: ignore[call-overload]
    counts = {"recorded": expected, "footer": scan.footer_rows}
    if scan.checksum is not None:
        counts["read"] = scan.checksum.rows
    ok = len(set(counts.values())) == 1
    detail = ", ".join(f"{n:,} {what}" for what, n in counts.items())
    return Check("rows", ok, f"{expected:,} rows" if ok else f"rows differ: {detail}")


def _schema_detail(expected: list[tuple[str, str]], found: list[tuple[str, str]]) -> str:
    if expected == found:
        return f"{len(found):,} columns as recorded"
    exp, got = dict(expected), dict(found)
    missing = [n for n in exp if n not in got]
    extra = [n for n in got if n not in exp]
    retyped = [f"{n} ({exp[n]} -> {got[n]})" for n in exp if n in got and exp[n] != got[n]]
    parts = []
    if missing:
        parts.append(f"missing {', '.join(missing[:5])}")
    if extra:
        parts.append(f"unexpected {', '.join(extra[:5])}")
    if retyped:
        parts.append(f"retyped {', '.join(retyped[:5])}")
    if not parts:
        parts.append("columns in another order")
    return "; ".join(parts)


def _nulls(recorded: Checksum, found: Checksum) -> Check:
    exp, got = dict(recorded.null_counts), dict(found.null_counts)
    differ = [f"{n} ({exp.get(n)} -> {got.get(n)})" for n in sorted(set(exp) | set(got))
              if exp.get(n) != got.get(n)]
    if differ:
        return Check("null counts", False, f"{len(differ)} column(s) differ: {', '.join(differ[:5])}")
    return Check("null counts", True, f"{len(exp):,} columns as recorded")


def _keys(recorded: Checksum, found: Checksum) -> Check:
    cols = ", ".join(recorded.key_columns) or "no key columns"
    if recorded.key_columns != found.key_columns:
        return Check("key digest", False, f"recorded over {cols}, found {', '.join(found.key_columns)}")
    ok = recorded.key_digest == found.key_digest
    detail = f"sha256 of {cols} " + ("matches" if ok else
                                     f"differs: recorded {recorded.key_digest[:12]}…, read "
                                     f"{found.key_digest[:12]}…")
    return Check("key digest", ok, detail)


def _column_check(recorded: ColumnDigests, found: ColumnDigests) -> Check:
    """Every column's values, row group by row group, against the record; names the columns
    and row groups that differ."""
    name = "column digests"
    if recorded.algorithm != found.algorithm:
        return Check(name, None, f"recorded with {recorded.algorithm}, which this celltable "
                                 "cannot recompute")
    if recorded.group_rows != found.group_rows:
        return Check(name, False, f"row groups differ: recorded {len(recorded.group_rows):,} "
                                  f"({sum(recorded.group_rows):,} rows), found "
                                  f"{len(found.group_rows):,} ({sum(found.group_rows):,} rows)")
    got = dict(found.columns)
    columns = [n for n, h in recorded.columns if got.get(n) != h]
    groups = [i for i, (a, b) in enumerate(zip(recorded.groups, found.groups, strict=True))
              if a != b]
    if not columns and not groups:
        return Check(name, True, f"{len(recorded.columns):,} columns x "
                                 f"{len(recorded.groups):,} row group(s) as recorded")
    starts = [sum(recorded.group_rows[:i]) for i in range(len(recorded.group_rows))]
    where = ", ".join(f"row group {i} (rows {starts[i]:,}-"
                      f"{starts[i] + recorded.group_rows[i] - 1:,})" for i in groups[:5])
    return Check(name, False, f"damaged values in column(s) {', '.join(columns[:5]) or '?'}"
                              f"{' ...' if len(columns) > 5 else ''}, in {where or '?'}")


# folder outputs ------------------------------------------------------------------------------


def file_fingerprint(size: int, metadata: Mapping[str, str]) -> str:
    """What a folder's manifest records of one file: its size and its own records (checksum,
    column digests), so a file missing, added, replaced or renamed (two tables' files swapped)
    is found without reading its rows."""
    text = f"{size}\0{metadata.get(CHECKSUM_KEY, '')}\0{metadata.get(COLUMNS_KEY, '')}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def manifest_json(files: Mapping[str, str]) -> str:
    """The manifest of a folder output: each file (relative POSIX path) and its fingerprint."""
    return json.dumps({"format": FORMAT, "files": dict(sorted(files.items()))}, indent=1) + "\n"


def check_folder(dest: str, manifest: str | None, found: Mapping[str, str],
                 current: bool) -> Check:
    """The folder's files against its manifest: none missing, none added, none changed.
    ``current``: its files are of a format that always has a manifest (then a missing one is a
    failure, else a folder of an older celltable)."""
    if manifest is None:
        check = (Check("files", False, f"{MANIFEST_NAME} is missing, although this output's "
                                       "format always writes one: the folder was edited")
                 if current else Check("files", None, "not recorded (an older celltable)"))
    else:
        try:
            expected = {str(k): str(v) for k, v in json.loads(manifest)["files"].items()}
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise ValidationError(f"{dest}: {MANIFEST_NAME} cannot be read ({e})") from e
        missing = sorted(set(expected) - set(found))
        extra = sorted(set(found) - set(expected))
        changed = sorted(n for n in expected if n in found and found[n] != expected[n])
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing[:5])}")
        if extra:
            parts.append(f"not in the manifest {', '.join(extra[:5])}")
        if changed:
            parts.append(f"replaced or swapped {', '.join(changed[:5])}")
        check = Check("files", not parts, "; ".join(parts) if parts else
                      f"{len(expected):,} file(s) as recorded in {MANIFEST_NAME}")
    return check
