"""Checking an output against what celltable recorded when it wrote it.

Conversion records, in the file's metadata, the provenance (rows out, the columns and their
types) and a checksum (null counts per column and a digest of the key columns, computed from the
rows as they were written). Validation re-reads the rows, recomputes the same figures and
compares: the rules here are pure; reading is the output reader's job.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from celltable.domain.errors import ValidationError
from celltable.domain.schema import Column

PROVENANCE_KEY = "celltable.provenance"
CHECKSUM_KEY = "celltable.checksum"


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
class OutputScan:
    """What an output file holds, as re-read: the footer's row count, its columns, its key-value
    metadata, and the checksum recomputed from its rows (None when not asked for)."""

    path: str
    footer_rows: int
    columns: tuple[Column, ...]
    metadata: tuple[tuple[str, str], ...]
    checksum: Checksum | None = None


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


def provenance_of(path: str, metadata: Mapping[str, str]) -> dict[str, object]:
    """The provenance recorded in a file's metadata.

    Raises:
        ValidationError: The file carries no celltable provenance, or it cannot be parsed.
    """
    text = metadata.get(PROVENANCE_KEY)
    if text is None:
        raise ValidationError(
            f"{path} has no {PROVENANCE_KEY} metadata: it was not written by celltable (or was "
            "rewritten by another tool); validate the file celltable wrote"
        )
    try:
        prov = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValidationError(f"{path}: its {PROVENANCE_KEY} metadata is not JSON ({e})") from e
    if not isinstance(prov, dict) or "rows_out" not in prov:
        raise ValidationError(f"{path}: its {PROVENANCE_KEY} metadata lacks rows_out")
    return prov


def recorded_checksum(path: str, metadata: Mapping[str, str]) -> Checksum | None:
    """The checksum written with the file; None for files written before checksums existed."""
    text = metadata.get(CHECKSUM_KEY)
    if text is None:
        return None
    try:
        return Checksum.from_json(text)
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise ValidationError(f"{path}: its {CHECKSUM_KEY} metadata cannot be read ({e})") from e


def compare(scan: OutputScan, prov: Mapping[str, object], recorded: Checksum | None) -> TableValidation:
    """The checks of one file: rows, schema, null counts and key digest against the record."""
    checks = [_rows(scan, prov, recorded)]
    schema = prov.get("schema")
    if isinstance(schema, list):
        expected = [(str(n), str(t)) for n, t in schema]
        found = [(c.name, c.type.value) for c in scan.columns]
        checks.append(Check("schema", expected == found, _schema_detail(expected, found)))
    else:
        checks.append(Check("schema", None, "not recorded (written by an older celltable)"))
    if recorded is None or scan.checksum is None:
        checks.append(Check("checksum", None, "not recorded (written by an older celltable)"))
    elif recorded.algorithm != scan.checksum.algorithm:
        checks.append(Check("checksum", None, f"recorded with {recorded.algorithm}, which this "
                                              "celltable cannot recompute"))
    else:
        checks.append(_nulls(recorded, scan.checksum))
        checks.append(_keys(recorded, scan.checksum))
    meta = dict(scan.metadata)
    return TableValidation(
        path=scan.path,
        rows=scan.footer_rows,
        columns=len(scan.columns),
        preset=str(prov.get("preset", "?")),
        producer_version=meta.get("data-producer-version", "?"),
        checks=tuple(checks),
    )


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
