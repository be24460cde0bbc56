"""What a source holds: plates (source units) and their tables, found by a source locator."""

from __future__ import annotations

from dataclasses import dataclass

from celltable.domain.plan import Chunk
from celltable.domain.presets import SourceFormat
from celltable.domain.schema import TableSchema


@dataclass(frozen=True, slots=True)
class TableLocation:
    """Where the preset's table ``table`` lives: a CSV file, or a table inside a SQLite file."""

    table: str
    path: str
    name_in_source: str


@dataclass(frozen=True, slots=True)
class SourceUnit:
    """One plate: a folder of CSVs or one SQLite file. Image keys are unique within it.

    ``key`` becomes ``Metadata_TableNumber``: the unit's path relative to the source root, or the
    source's own name when the source is the unit.
    """

    key: str
    format: SourceFormat
    path: str
    tables: tuple[TableLocation, ...]
    partition: tuple[str, str] | None = None
    """``(column, value)``: the unit is the rows of its file whose ``column`` (as text) equals
    ``value``: one CellProfiler run (``TableNumber``) of a cytominer-database file."""

    def location(self, table: str) -> TableLocation | None:
        for loc in self.tables:
            if loc.table == table:
                return loc
        return None


@dataclass(frozen=True, slots=True)
class SkippedFile:
    """A file under the source that no table of the preset was read from, and why."""

    path: str
    reason: str


@dataclass(frozen=True, slots=True)
class SourceLayout:
    """The plates found under a source path, and the files passed over.

    ``reasons`` gives, when the locator knows it, why each file of ``skipped`` was passed over
    (same order)."""

    root: str
    units: tuple[SourceUnit, ...]
    skipped: tuple[str, ...] = ()
    reasons: tuple[str, ...] = ()
    roots: tuple[str, ...] = ()
    """The sources read when ``root`` lists several (a manifest); empty when ``root`` is the one
    source."""

    def __post_init__(self) -> None:
        if self.reasons and len(self.reasons) != len(self.skipped):
            raise ValueError("one reason per skipped file, or none")

    def source_paths(self) -> tuple[str, ...]:
        """Every path read as a source: the source given (a manifest too), each source it
        lists, and each plate's folder or file and table files, as the locator found them."""
        found = [self.root, *self.roots]
        for u in self.units:
            found.append(u.path)
            found.extend(t.path for t in u.tables)
        return tuple(dict.fromkeys(found))

    def skipped_files(self) -> tuple[SkippedFile, ...]:
        """Every skipped file with its reason (``"not read"`` when none was recorded)."""
        reasons = self.reasons or ("not read",) * len(self.skipped)
        return tuple(SkippedFile(p, r) for p, r in zip(self.skipped, reasons, strict=True))


@dataclass(frozen=True, slots=True)
class StagedTable:
    """A table of a unit made ready for chunked queries."""

    table: str
    schema: TableSchema
    rows: int
    rows_by_image: tuple[tuple[int, int], ...]
    null_keys: int = 0
    duplicate_keys: int = 0
    not_cast: tuple[tuple[str, int], ...] = ()
    """``(column, values)``: values that did not cast to the column's type and were read as NULL
    (SQLite values of mixed storage classes)."""
    widened: tuple[str, ...] = ()
    """Columns declared integer in the source but holding fractions, read as float64."""


@dataclass(frozen=True, slots=True)
class StagedUnit:
    """A unit whose tables are staged; ``handle`` is the query adapter's reference to them."""

    unit: SourceUnit
    handle: str
    tables: tuple[StagedTable, ...]
    in_place: bool = False
    """The tables are read from the source itself, in storage order, rather than from a copy."""

    def table(self, name: str) -> StagedTable | None:
        for t in self.tables:
            if t.table == name:
                return t
        return None


@dataclass(frozen=True, slots=True)
class ChunkOutput:
    """The rows a task produced (an engine-specific table) and what it counted."""

    chunk: Chunk
    data: object
    rows_out: int
    rows_in: int
    dropped: int = 0
    missing: tuple[tuple[str, int], ...] = ()
    null_objects: int = 0  # rows out whose object number is NULL
