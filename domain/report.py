"""The run report: what a conversion found, read, joined and wrote, and every difference between
plates it reconciled on the way (columns a plate lacks, types widened, values not cast).

The convert use case builds a :class:`RunReport` from what it already knows; :func:`report_json`
turns it into the plain data written beside the output (``<DEST>.report.json``). Pure: no I/O.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol, TypeVar

from celltable.domain.differences import ColumnCast, ColumnDifferences, MissingColumns
from celltable.domain.differences import column_differences as column_differences
from celltable.domain.schema import DataType
from celltable.domain.sources import BAD_FILE, SkippedFile, StagedPlate

REPORT_VERSION = 1
"""Bumped when a key of :func:`report_json` changes meaning or disappears (new keys do not)."""

REPORT_SUFFIX = ".report.json"
"""The report's name beside the output: ``<DEST>.report.json``; never a Parquet name, so
``celltable validate`` of a folder output never takes it for a table."""


class Counted(Protocol):
    """Anything carrying the counts of some base rows: a chunk's output, a plate's or a
    table's counts."""

    @property
    def rows_in(self) -> int: ...
    @property
    def rows_out(self) -> int: ...
    @property
    def dropped(self) -> int: ...
    @property
    def missing(self) -> tuple[tuple[str, int], ...]: ...
    @property
    def null_objects(self) -> int: ...


C = TypeVar("C", "PlateRows", "TableReport")


def _added(counts: C, more: Counted) -> C:
    """``counts`` with ``more``'s added: rows in, out and dropped, missing partners per
    relationship, NULL object numbers."""
    missing = Counter(dict(counts.missing))
    missing.update(dict(more.missing))
    return replace(counts, rows_in=counts.rows_in + more.rows_in,
                   rows_out=counts.rows_out + more.rows_out, dropped=counts.dropped + more.dropped,
                   missing=tuple(sorted(missing.items())),
                   null_objects=counts.null_objects + more.null_objects)


@dataclass(frozen=True, slots=True)
class PlateRows:
    """What became of one plate's base rows in an output table (see :class:`TableReport`)."""

    plate: str
    rows_in: int
    rows_out: int
    dropped: int = 0
    missing: tuple[tuple[str, int], ...] = ()
    null_objects: int = 0

    def plus(self, more: Counted) -> PlateRows:
        """These counts with ``more``'s added (a chunk's output, say)."""
        return _added(self, more)


@dataclass(frozen=True, slots=True)
class TableReport:
    """One output table: where it went, its rows and columns, and what became of its input rows.

    ``rows_in`` counts the rows of the base table read (the base compartment for a join);
    ``dropped`` counts base rows left out because a partner is missing, and ``missing`` splits
    them by relationship (``Cytoplasm.Parent_Cells -> Cells``); a row missing several partners
    counts once under each it could be looked up for (down a chain of relationships, only
    under the first missing one). ``null_objects`` counts rows out whose object number
    (``Metadata_ObjectNumber``) is NULL: kept, but no object can be told by them.
    """

    name: str
    path: str
    rows_in: int
    rows_out: int
    columns: int
    dropped: int = 0
    missing: tuple[tuple[str, int], ...] = ()
    plates: tuple[PlateRows, ...] = ()
    """The same counts for each plate, in plate order."""
    null_objects: int = 0

    @property
    def unaccounted(self) -> int:
        """Rows in minus rows out minus rows dropped: zero unless parent keys are duplicated
        (then negative: a base row matched several partners)."""
        return self.rows_in - self.rows_out - self.dropped

    def plus(self, more: Counted) -> TableReport:
        """These counts with ``more``'s added (a chunk's output, or a file's counts); the
        per-plate counts are left as they are."""
        return _added(self, more)

    def dropped_by_plate(self) -> dict[str, int]:
        """The plates that dropped rows, and how many."""
        return {p.plate: p.dropped for p in self.plates if p.dropped}

    def null_objects_by_plate(self) -> dict[str, int]:
        """The plates with rows whose object number is NULL, and how many."""
        return {p.plate: p.null_objects for p in self.plates if p.null_objects}

    def published_at(self, dest: str, staged_output: str) -> TableReport:
        """The report with its path where the output was published (``staged_output`` is
        where it was written before)."""
        return replace(self, path=dest + self.path[len(staged_output):])


@dataclass(frozen=True, slots=True)
class TableRead:
    """One source table of one plate as staged: where it was, its rows and columns."""

    plate: str
    table: str
    path: str
    rows: int
    columns: int


@dataclass(frozen=True, slots=True)
class ValuesNotCast:
    """Values of one source column that did not cast to its type and were read as NULL (SQLite
    columns whose values have mixed storage classes: ``'n/a'`` in an ``INTEGER`` column)."""

    plate: str
    table: str
    column: str
    type: DataType
    values: int


@dataclass(frozen=True, slots=True)
class PeakMemory:
    """Peak resident memory in bytes: of the converting process, and of the largest worker
    process that finished (0 when tasks ran in threads). Both are peaks over the life of the
    process so far, which in a notebook includes earlier work."""

    process: int
    workers: int = 0


@dataclass(frozen=True, slots=True)
class RunReport:
    """Everything a conversion did, for the report file and the summary.

    Attributes:
        source: The source as given (absolute for local paths).
        dest: The published destination.
        preset: The preset used.
        join: One joined table (True) or one table per source table.
        producer: ``celltable``; ``version``: its version.
        used: The files tables were read from (relative to ``source`` where under it).
        skipped: The files passed over, with why.
        read: Every source table read, per plate.
        tables: One report per output table (rows in, out, dropped, missing partners).
        differences: Per output table name, how its plates differ in their columns
            (:func:`celltable.domain.differences.column_differences`).
        not_cast: Source values read as NULL because they did not cast.
        widened: ``(plate, table, column)`` declared integer but holding fractions: read as
            float64.
        duration_s: Wall time of the conversion.
        peak_memory: None where it cannot be measured.
        experiments: CellProfiler's Experiment table of the plates (:func:`experiments_of`).
    """

    source: str
    dest: str
    preset: str
    join: bool
    producer: str
    version: str
    used: tuple[str, ...]
    skipped: tuple[SkippedFile, ...]
    read: tuple[TableRead, ...]
    tables: tuple[TableReport, ...]
    differences: tuple[tuple[str, ColumnDifferences], ...] = ()
    not_cast: tuple[ValuesNotCast, ...] = ()
    widened: tuple[tuple[str, str, str], ...] = ()
    duration_s: float = 0.0
    peak_memory: PeakMemory | None = None
    experiments: tuple[dict[str, Any], ...] = ()
    """The runs that measured the plates: :func:`experiments_of`."""

    @property
    def empty_tables(self) -> tuple[TableRead, ...]:
        """Source tables without rows (a header-only CSV, an empty SQLite table)."""
        return tuple(t for t in self.read if t.rows == 0)

    @property
    def missing(self) -> tuple[MissingColumns, ...]:
        return tuple(m for _, d in self.differences for m in d.missing)

    @property
    def cast(self) -> tuple[ColumnCast, ...]:
        return tuple(c for _, d in self.differences for c in d.cast)

    @property
    def bad_files(self) -> tuple[SkippedFile, ...]:
        """The files skipped because they cannot be read (with ``skip_bad_files``)."""
        return tuple(f for f in self.skipped if f.reason.startswith(BAD_FILE))


def experiments_of(staged: Sequence[StagedPlate]) -> tuple[dict[str, Any], ...]:
    """The distinct Experiment tables of the plates (CellProfiler version, run time, pipeline
    ...), each once with the plates it describes: ``{"plates": [...], "values": {...}}``."""
    groups: dict[tuple[tuple[str, str], ...], list[str]] = {}
    for s in staged:
        if s.experiment:
            groups.setdefault(s.experiment, []).append(s.plate.key)
    return tuple({"plates": plates, "values": dict(pairs)} for pairs, plates in groups.items())


def source_rows(staged: Iterable[StagedPlate]) -> dict[str, int]:
    """Rows staged per source table, summed over the plates."""
    rows: Counter[str] = Counter()
    for s in staged:
        for t in s.tables:
            rows[t.table] += t.rows
    return dict(rows)


def tables_read(staged: Iterable[StagedPlate]) -> tuple[TableRead, ...]:
    """Every staged table of every plate, with the file it came from."""
    out = []
    for s in staged:
        for t in s.tables:
            loc = s.plate.location(t.table)
            out.append(TableRead(s.plate.key, t.table, loc.path if loc else s.plate.path, t.rows,
                                 len(t.schema.columns)))
    return tuple(out)


def values_not_cast(staged: Iterable[StagedPlate]) -> tuple[ValuesNotCast, ...]:
    """The values each plate's tables read as NULL because they did not cast."""
    return tuple(
        ValuesNotCast(s.plate.key, t.table, column, t.schema.type_of(column), n)
        for s in staged for t in s.tables for column, n in t.not_cast
    )


def widened_in_source(staged: Iterable[StagedPlate]) -> tuple[tuple[str, str, str], ...]:
    """``(plate, table, column)`` for columns declared integer but read as float64."""
    return tuple((s.plate.key, t.table, c) for s in staged for t in s.tables for c in t.widened)


def report_json(report: RunReport) -> dict[str, Any]:
    """The report as JSON-ready data (stable keys; ``report_version`` says which).

    Paths under the source are relative to it; the rest are as recorded.
    """
    rel = relative_to(report.source)
    rows_read: dict[str, int] = {}
    for t in report.read:
        rows_read[t.table] = rows_read.get(t.table, 0) + t.rows
    plates: dict[str, list[dict[str, Any]]] = {}
    for t in report.read:
        plates.setdefault(t.plate, []).append(
            {"table": t.table, "path": rel(t.path), "rows": t.rows, "columns": t.columns})
    return {
        "report_version": REPORT_VERSION,
        "producer": report.producer,
        "producer_version": report.version,
        "source": report.source,
        "dest": report.dest,
        "preset": report.preset,
        "join": report.join,
        "duration_s": round(report.duration_s, 3),
        "peak_memory_bytes": (
            {"process": report.peak_memory.process, "workers": report.peak_memory.workers}
            if report.peak_memory else None),
        "files": {
            "found": len(report.used) + len(report.skipped),
            "used": [rel(p) for p in report.used],
            "skipped": [{"path": rel(s.path), "reason": s.reason} for s in report.skipped],
        },
        "plates": [{"plate": p, "tables": ts} for p, ts in plates.items()],
        "experiments": list(report.experiments),
        "tables_without_rows": [
            {"plate": t.plate, "table": t.table, "path": rel(t.path)} for t in report.empty_tables],
        "rows_read": rows_read,
        "outputs": [
            {"table": t.name, "path": t.path, "columns": t.columns, "rows_in": t.rows_in,
             "rows_out": t.rows_out, "rows_dropped": t.dropped, "rows_unaccounted": t.unaccounted,
             "orphans": dict(t.missing), "null_object_numbers": t.null_objects,
             "plates": [
                 {"plate": p.plate, "rows_in": p.rows_in, "rows_out": p.rows_out,
                  "rows_dropped": p.dropped, "orphans": dict(p.missing),
                  "null_object_numbers": p.null_objects}
                 for p in t.plates]}
            for t in report.tables],
        "columns": {
            "added": sorted({c for _, d in report.differences for c in d.added}),
            "missing": [
                {"table": m.output, "plate": m.plate, "source_table": m.table,
                 "path": rel(m.path) if m.path else None, "columns": list(m.columns)}
                for m in report.missing],
            "cast": [
                {"table": c.output, "column": c.column, "type": c.type.value,
                 "from": {plate: t.value for plate, t in c.sources}}
                for c in report.cast],
            "widened_in_source": [
                {"plate": p, "table": t, "column": c, "type": DataType.FLOAT64.value}
                for p, t, c in report.widened],
            "values_not_cast": [
                {"plate": v.plate, "table": v.table, "column": v.column, "type": v.type.value,
                 "values": v.values}
                for v in report.not_cast],
        },
    }


def relative_to(root: str) -> Callable[[str], str]:
    """A function giving a path relative to ``root`` when it lies under it (``root`` itself:
    its name), else the path unchanged."""
    base = root.rstrip("/")

    def rel(path: str) -> str:
        if path == base:
            return base.rsplit("/", 1)[-1]
        return path[len(base) + 1:] if path.startswith(base + "/") else path

    return rel
