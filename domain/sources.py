"""What a source holds: plates and their tables, found by a source locator."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from celltable.domain.errors import BadSourceFilesError
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
class Plate:
    """One plate: a folder of CSVs or one SQLite file. Image keys are unique within it.

    ``key`` becomes ``Metadata_TableNumber``: the plate's path relative to the source root, or the
    source's own name when the source is the plate.
    """

    key: str
    format: SourceFormat
    path: str
    tables: tuple[TableLocation, ...]
    partition: tuple[str, str] | None = None
    """``(column, value)``: the plate is the rows of its file whose ``column`` (as text) equals
    ``value``: one CellProfiler run (``TableNumber``) of a cytominer-database file."""

    def location(self, table: str) -> TableLocation | None:
        for loc in self.tables:
            if loc.table == table:
                return loc
        return None


@dataclass(frozen=True, slots=True)
class SourceTree:
    """A source as listed, before any table is matched: what the local and the cloud locators
    share, so both find the same plates in the same order.

    Attributes:
        location: The source as shown to users (an absolute local path or a cloud URI).
        name: The source's own name: the plate key when the source is one plate.
        is_file: The source is one file (a SQLite plate), not a folder.
        folders: Every folder under the source (the source itself as ``""``), as POSIX paths
            relative to it, with their file names; folders in walk order (parents first,
            siblings by name), names sorted.
    """

    location: str
    name: str
    is_file: bool
    folders: tuple[tuple[str, tuple[str, ...]], ...] = ()
    passed: tuple[tuple[str, str], ...] = ()
    """Folders not read, as ``(relative path, why)``: links to folders read already."""

    @classmethod
    def of(cls, location: str, name: str, listing: Iterable[tuple[str, Iterable[str]]],
           passed: Iterable[tuple[str, str]] = ()) -> SourceTree:
        """A folder tree from ``(relative folder, file names)`` pairs in any order."""
        folders = sorted(((rel, tuple(sorted(names))) for rel, names in listing),
                         key=lambda f: tuple(f[0].split("/")) if f[0] else ())
        return cls(location, name, False, tuple(folders), tuple(passed))

    def key(self, rel: str) -> str:
        """The plate key (``Metadata_TableNumber``) of the plate at ``rel``."""
        return rel or self.name

    @staticmethod
    def join(folder: str, name: str) -> str:
        """The relative path of file ``name`` in ``folder``."""
        return f"{folder}/{name}" if folder else name

    def files(self, suffixes: tuple[str, ...]) -> list[str]:
        """The relative paths of the files under a folder source whose names end with one of
        ``suffixes`` (lower case), in walk order."""
        return [self.join(d, f) for d, names in self.folders for f in names
                if f.lower().endswith(suffixes)]


@dataclass(frozen=True, slots=True)
class FoundPlates:
    """What one source format found in a listed source: its plates, the files passed over
    (``(path, why)``), and the files that cannot be read."""

    plates: tuple[Plate, ...] = ()
    skipped: tuple[tuple[str, str], ...] = ()
    bad: tuple[SkippedFile, ...] = ()


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
    plates: tuple[Plate, ...]
    skipped: tuple[str, ...] = ()
    reasons: tuple[str, ...] = ()
    roots: tuple[str, ...] = ()
    """The sources read when ``root`` lists several (a manifest); empty when ``root`` is the one
    source."""
    bad: tuple[SkippedFile, ...] = ()
    """Files of the preset's tables that cannot be read (empty, cut short, corrupt), found by a
    cheap look at every file before any data moves; their plates are still in ``plates``."""

    def __post_init__(self) -> None:
        if self.reasons and len(self.reasons) != len(self.skipped):
            raise ValueError("one reason per skipped file, or none")

    def source_paths(self) -> tuple[str, ...]:
        """Every path read as a source: the source given (a manifest too), each source it
        lists, and each plate's folder or file and table files, as the locator found them."""
        found = [self.root, *self.roots]
        for u in self.plates:
            found.append(u.path)
            found.extend(t.path for t in u.tables)
        return tuple(dict.fromkeys(found))

    def skipped_files_reasons(self) -> tuple[str, ...]:
        """Why each file of ``skipped`` was (``"not read"`` when none was recorded)."""
        return self.reasons or ("not read",) * len(self.skipped)

    def skipped_files(self) -> tuple[SkippedFile, ...]:
        """Every skipped file with its reason."""
        return tuple(SkippedFile(p, r)
                     for p, r in zip(self.skipped, self.skipped_files_reasons(), strict=True))


BAD_FILE = "bad file: "
"""How the reason of a file skipped as unreadable begins (in ``SourceLayout.reasons``)."""

BAD_SHOWN = 20
"""Bad files named one line each in an error; the rest are counted."""


def bad_files_message(bad: Sequence[SkippedFile], shown: int = BAD_SHOWN) -> str:
    """The error naming bad files: one line for one file, else a line saying how many and one
    line per file, capped with how many more there are."""
    advice = "or pass --skip-bad-files (skip_bad_files=True) to convert the rest"
    if len(bad) == 1:
        return (f"{bad[0].path} cannot be read: {bad[0].reason}; nothing was written. Fix or "
                f"remove it, {advice}")
    lines = [f"{len(bad)} source files cannot be read; nothing was written. Fix or remove "
             f"them, {advice}:"]
    lines += [f"  {b.path}: {b.reason}" for b in bad[:shown]]
    if len(bad) > shown:
        lines.append(f"  ... and {len(bad) - shown} more")
    return "\n".join(lines)


def bad_files_error(bad: Sequence[SkippedFile], nothing_left: bool = False) -> BadSourceFilesError:
    """The named error for ``bad`` files (see :func:`bad_files_message`); ``nothing_left``:
    skipping them would leave no plate."""
    message = bad_files_message(bad)
    if nothing_left:
        message = f"every plate holds a bad file, so nothing is left to convert: {message}"
    return BadSourceFilesError(message, tuple((b.path, b.reason) for b in bad))


def screened(layout: SourceLayout, skip_bad_files: bool) -> SourceLayout:
    """``layout`` ready to convert: unchanged when no file is bad; without the plates (or NPZ
    sites) holding bad files when ``skip_bad_files``.

    Raises:
        BadSourceFilesError: Files are bad and ``skip_bad_files`` is false, or every plate holds
            a bad file.
    """
    if not layout.bad:
        return layout
    if not skip_bad_files:
        raise bad_files_error(layout.bad)
    kept = without_bad(layout, layout.bad)
    if not kept.plates:
        raise bad_files_error(layout.bad, nothing_left=True)
    return kept


def without_failed(layout: SourceLayout, bad: tuple[SkippedFile, ...],
                   keys: Iterable[str]) -> SourceLayout:
    """``layout`` without its bad files (:func:`without_bad`) and without the plates ``keys``
    that failed on reading them.

    Raises:
        BadSourceFilesError: No plate is left.
    """
    failed = set(keys)
    kept = without_bad(layout, bad)
    kept = replace(kept, plates=tuple(u for u in kept.plates if u.key not in failed))
    if not kept.plates:
        raise bad_files_error(bad, nothing_left=True)
    return kept


def without_bad(layout: SourceLayout, bad: tuple[SkippedFile, ...]) -> SourceLayout:
    """``layout`` without the plates holding a bad file (a file of a plate's own table: the
    plate cannot be joined without it), or, for plates of many sites of one table (NPZ), without
    the bad sites only; every file left out is added to ``skipped`` with its reason."""
    if not bad:
        return layout
    why = {b.path: b.reason for b in bad}
    plates, skipped, reasons = [], list(layout.skipped), list(layout.skipped_files_reasons())
    for u in layout.plates:
        broken = [t for t in u.tables if t.path in why]
        if not broken:
            plates.append(u)
            continue
        kept = tuple(t for t in u.tables if t.path not in why)
        if len({t.table for t in u.tables}) == 1 and len(u.tables) > 1 and kept:
            plates.append(replace(u, tables=kept))  # sites of one table: keep the good ones
        else:
            named = broken[0].path
            for t in kept:
                if t.path not in skipped:
                    skipped.append(t.path)
                    reasons.append(f"plate {u.key} skipped: its file {named} is bad")
    seen = set(skipped)
    for b in bad:
        if b.path not in seen:
            skipped.append(b.path)
            reasons.append(BAD_FILE + b.reason)
            seen.add(b.path)
        else:
            reasons[skipped.index(b.path)] = BAD_FILE + b.reason
    return replace(layout, plates=tuple(plates), skipped=tuple(skipped), reasons=tuple(reasons))


@dataclass(frozen=True, slots=True)
class StagedTable:
    """A table of a plate made ready for chunked queries."""

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


class StagedHandle(Protocol):
    """The query engine's handle on a plate's staged tables: a typed value of the engine
    adapter, which owns what it holds (a connection, a copy's file) until the plate is
    released; opaque to the application."""

    def exists(self) -> bool:
        """Whether the tables can be read through it in this process (a copy not deleted, a
        database in this process's memory)."""
        ...


@dataclass(frozen=True, slots=True)
class StagedPlate:
    """A plate whose tables are staged; ``handle`` is the query engine's handle on them."""

    plate: Plate
    handle: StagedHandle
    tables: tuple[StagedTable, ...]
    in_place: bool = False
    """The tables are read from the source itself, in storage order, rather than from a copy."""
    experiment: tuple[tuple[str, str], ...] = ()
    """The settings of the run that measured the plate (CellProfiler's Experiment table:
    ``CellProfiler_Version``, ``Run_Timestamp``, ``Pipeline_Pipeline`` ...), when it has one."""

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
