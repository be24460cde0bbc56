"""The listing of a source (:class:`Tree`) and the matching of its files to a preset's tables
(:func:`match_units`), shared by the local and the cloud locators (``adapters/cloud_locator.py``)."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from celltable.adapters.file_checks import sqlite_problem
from celltable.domain.errors import NoTablesFoundError, SourceReadError
from celltable.domain.presets import Preset, SourceFormat
from celltable.domain.sources import SkippedFile, SourceLayout, SourceUnit, TableLocation

SQLITE_SUFFIXES = (".sqlite", ".sqlite3", ".db")


def sqlite_tables(path: Path) -> list[str]:
    """The table names of a SQLite file, read without changing it.

    Raises:
        SourceReadError: The file is not a readable SQLite database.
    """
    try:
        with sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True) as con:
            rows = con.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'view')")
            return [r[0] for r in rows]
    except sqlite3.DatabaseError as e:
        raise SourceReadError(sqlite_trouble(path, e)) from e


_BUSY, _LOCKED, _READONLY = 5, 6, 8  # SQLite's primary result codes


def sqlite_trouble(path: Path, e: sqlite3.DatabaseError) -> str:
    """What to tell a user whose SQLite file cannot be read: a writer holding a lock and a
    crashed writer's journal are not damage, and copying the file again would not help."""
    code = (getattr(e, "sqlite_errorcode", None) or 0) & 0xFF  # Python 3.11+
    journal = path.with_name(path.name + "-journal")
    if code in (_BUSY, _LOCKED):
        return (f"{path} is locked by a program writing it (is CellProfiler still running?); "
                "convert it once that program has finished")
    if code == _READONLY and journal.exists():
        return (f"{path} has a journal ({journal.name}) left by a writer that stopped mid-way; "
                "open the database once with write access (e.g. `sqlite3 FILE 'PRAGMA "
                "integrity_check'`) so SQLite rolls the journal back, then convert it")
    return (f"{path} is not a readable SQLite database ({e}); check the file is complete "
            "(copy it again) or remove it from the source")


@dataclass(frozen=True, slots=True)
class Tree:
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
           passed: Iterable[tuple[str, str]] = ()) -> Tree:
        """A folder tree from ``(relative folder, file names)`` pairs in any order."""
        folders = sorted(((rel, tuple(sorted(names))) for rel, names in listing),
                         key=lambda f: tuple(f[0].split("/")) if f[0] else ())
        return cls(location, name, False, tuple(folders), tuple(passed))

    def key(self, rel: str) -> str:
        """The plate key (``Metadata_TableNumber``) of the unit at ``rel``."""
        return rel or self.name

    def sqlite_files(self) -> list[str]:
        """The relative paths of the SQLite files of the source (``""``: the source itself)."""
        if self.is_file:  # any name (SQLite files go by many), but not an NPZ (a zip) or CSV
            return [] if self.name.lower().endswith((".npz", ".csv", ".tsv")) else [""]
        return [_join(d, f) for d, names in self.folders for f in names
                if f.lower().endswith(SQLITE_SUFFIXES)]


def _join(folder: str, name: str) -> str:
    return f"{folder}/{name}" if folder else name


def _walk(root: Path) -> Tree:
    """The tree under a local folder. Links to folders are followed (workflow managers stage
    plates as links), each folder read once: a link reaching a folder already read (a loop, or
    a second name for a plate) is passed over and listed with the skipped files, so no plate
    is read twice. Real folders are walked before links beside them, so a plate keeps its own
    name rather than a link's."""
    found, passed, seen = [], [], {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        rel = Path(dirpath).relative_to(root).as_posix()
        rel = "" if rel == "." else rel
        real = os.path.realpath(dirpath)
        if real in seen:
            dirnames.clear()
            passed.append((rel, f"a link to {real}, read already as "
                                f"{seen[real] or 'the source itself'}"))
            continue
        seen[real] = rel
        dirnames.sort(key=lambda d: ((Path(dirpath) / d).is_symlink(), d))
        found.append((rel, filenames))
    return Tree.of(str(root), root.name, found, passed)


def match_units(
    tree: Tree,
    preset: Preset,
    where: Callable[[str], str],
    local: Callable[[str], str] | None = None,
    state: Callable[[str], str | None] | None = None,
) -> SourceLayout:
    """The plates of ``tree`` holding tables of ``preset``.

    Args:
        tree: The listed source.
        preset: Whose tables to match (by exact name, ignoring case).
        where: The location of a relative path, as the units should name it.
        local: The local file of a relative SQLite path, to read its table names (default:
            ``where``).
        state: What is odd about the file at a relative path (``"empty file"``), when that is
            cheap to tell; added to the reason a file is skipped.

    Raises:
        NoTablesFoundError: Nothing matches the preset's tables, and no SQLite file is bad.
        SourceReadError: A folder holds a table twice.

    SQLite files that cannot be read (cut short, not a database) are listed in the layout's
    ``bad``, not raised.
    """
    bad: list[SkippedFile] = []
    if preset.source_format is SourceFormat.SQLITE:
        units, skipped = _sqlite_units(tree, preset, local or where, bad)
    elif preset.source_format is SourceFormat.NPZ:
        units, skipped = _npz_units(tree, preset, where), []
    elif preset.one_table_per_file:
        units, skipped = _file_units(tree, preset, where), []
    else:
        units, skipped = _csv_units(tree, preset, where)
    if not units and not bad:
        raise NoTablesFoundError(_nothing_found(tree, preset, [p for p, _ in skipped]))
    skipped = [*skipped, *((where(rel), why) for rel, why in tree.passed)]
    reasons = []
    for path, why in skipped:
        odd = state(_rel(tree, path)) if state is not None else None
        reasons.append(f"{odd}; {why}" if odd else why)
    return SourceLayout(tree.location, tuple(units), tuple(p for p, _ in skipped),
                        tuple(reasons), bad=tuple(bad))


def _rel(tree: Tree, path: str) -> str:
    """The relative path of a location ``where`` gave (``""``: the source itself)."""
    root = tree.location.rstrip("/")
    return path[len(root):].lstrip("/") if path.startswith(root) else path


def _sqlite_units(tree: Tree, preset: Preset, local: Callable[[str], str],
                  bad: list[SkippedFile]) -> tuple[list[SourceUnit], list[tuple[str, str]]]:
    units, skipped = [], []
    for rel in tree.sqlite_files():
        path = local(rel)
        tables = []
        short = sqlite_problem(Path(path))
        if short:
            bad.append(SkippedFile(path, short))
            continue
        try:
            names = sqlite_tables(Path(path))
        except SourceReadError as e:  # named with every other bad file, before any data moves
            bad.append(SkippedFile(path, str(e).removeprefix(f"{path} ")))
            continue
        for name in names:
            table = preset.match_table(name)
            if table is not None:
                tables.append(TableLocation(table, path, name))
        if tables:
            units.extend(_runs(SourceUnit(tree.key(rel), SourceFormat.SQLITE, path, tuple(tables)),
                               preset.table_number))
        else:
            skipped.append((path, f"holds no table of preset {preset.name}"))
    return units, skipped


def _runs(unit: SourceUnit, column: str | None) -> list[SourceUnit]:
    """A file's plates: one per value of the preset's ``table_number`` column (a CellProfiler
    run), keyed ``<file>/<value>``; the file itself when it has no such column."""
    if column is None:
        return [unit]
    values: set[str] = set()
    try:
        with sqlite3.connect(f"{Path(unit.path).as_uri()}?mode=ro", uri=True) as con:
            for loc in unit.tables:
                names = {r[1] for r in con.execute(f'PRAGMA table_info("{_q(loc.name_in_source)}")')}
                if column in names:
                    values.update(v for (v,) in con.execute(
                        f'SELECT DISTINCT CAST("{_q(column)}" AS TEXT) FROM "{_q(loc.name_in_source)}"'
                    ) if v is not None)
    except sqlite3.DatabaseError as e:
        raise SourceReadError(f"cannot read {column} of {unit.path}: {e}") from e
    if not values:
        return [unit]
    order = sorted(values, key=lambda v: (len(v), v))  # whole numbers in numeric order
    return [SourceUnit(f"{unit.key}/{v}", unit.format, unit.path, unit.tables, (column, v))
            for v in order]


def _q(name: str) -> str:
    return name.replace('"', '""')


def _file_units(tree: Tree, preset: Preset, where: Callable[[str], str]) -> list[SourceUnit]:
    """Every CSV file a plate of its own holding the base compartment, keyed by its path."""
    files = ([""] if tree.name.lower().endswith(".csv") else []) if tree.is_file else [
        _join(d, f) for d, names in tree.folders for f in names if f.lower().endswith(".csv")]
    return [SourceUnit(tree.key(rel), SourceFormat.CSV, where(rel),
                       (TableLocation(preset.base, where(rel), Path(rel or tree.name).stem),))
            for rel in files]


def _npz_units(tree: Tree, preset: Preset, where: Callable[[str], str]) -> list[SourceUnit]:
    """Every folder holding ``.npz`` files a plate (DeepProfiler writes ``<plate>/<well>_<site>.npz``),
    each file a site of it, in name order; a lone file is a plate of one site."""
    def unit(rel: str, files: list[str]) -> SourceUnit:
        tables = tuple(TableLocation(preset.base, where(f), Path(f or tree.name).stem)
                       for f in files)
        return SourceUnit(tree.key(rel), SourceFormat.NPZ, where(rel), tables)

    if tree.is_file:
        return [unit("", [""])] if tree.name.lower().endswith(".npz") else []
    found = [(d, [_join(d, f) for f in names if f.lower().endswith(".npz")])
             for d, names in tree.folders]
    return [unit(d, files) for d, files in found if files]


def _csv_units(tree: Tree, preset: Preset, where: Callable[[str], str]
               ) -> tuple[list[SourceUnit], list[tuple[str, str]]]:
    if tree.is_file:
        hint = (" It looks like SQLite: try --preset cellprofiler_sqlite."
                if tree.name.lower().endswith(SQLITE_SUFFIXES) else "")
        raise NoTablesFoundError(
            f"{tree.location} is a file; for CSV presets give the folder holding "
            f"{', '.join(t + '.csv' for t in preset.tables)}.{hint}"
        )
    units, skipped = [], []
    for folder, names in tree.folders:
        tables = []
        for name in names:
            stem, dot, suffix = name.rpartition(".")
            table = preset.match_table(stem) if dot and suffix.lower() == "csv" else None
            if table is None:
                if name.lower().endswith(".csv"):
                    why = ("CellProfiler's Experiment table: kept in the output's metadata and "
                           "the run report (experiments), not as rows"
                           if stem.lower() == "experiment" else
                           f"no table of preset {preset.name} is named {stem}")
                    skipped.append((where(_join(folder, name)), why))
                continue
            if any(t.table == table for t in tables):
                raise SourceReadError(
                    f"{where(folder)} holds two files for table {table} ({name} and another that "
                    "differs only in case); keep one"
                )
            tables.append(TableLocation(table, where(_join(folder, name)), stem))
        if tables:
            units.append(SourceUnit(tree.key(folder), SourceFormat.CSV, where(folder), tuple(tables)))
    return units, skipped


def _nothing_found(tree: Tree, preset: Preset, skipped: list[str]) -> str:
    if preset.source_format is SourceFormat.NPZ:
        return (f"no .npz files (DeepProfiler features) found in {tree.location}; "
                "`celltable presets` lists the layouts celltable knows")
    wanted = ", ".join((preset.image_table, *(c.table for c in preset.compartments)))
    hint = ""
    if preset.source_format is SourceFormat.CSV and (
        tree.name.lower().endswith(SQLITE_SUFFIXES)
        or any(s.lower().endswith(SQLITE_SUFFIXES) for s in skipped)
    ):
        hint = "; it looks like SQLite: try --preset cellprofiler_sqlite"
    elif preset.source_format is SourceFormat.SQLITE and not tree.is_file and not skipped:
        hint = "; no SQLite files there: for CSV folders try --preset cellprofiler_csv"
    return (
        f"no tables of preset {preset.name!r} ({wanted}) found in {tree.location}{hint}; "
        "`celltable presets` lists the layouts celltable knows"
    )
