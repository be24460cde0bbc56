"""Local storage: finding plates under a source folder, and publishing output atomically."""

from __future__ import annotations

import os
import shutil
import sqlite3
import uuid
from pathlib import Path

from celltable.domain.errors import (
    DestinationError,
    NoTablesFoundError,
    SourceNotFoundError,
    SourceReadError,
)
from celltable.domain.ports import StagingPaths
from celltable.domain.presets import Preset, SourceFormat
from celltable.domain.sources import SourceLayout, SourceUnit, TableLocation

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
        raise SourceReadError(
            f"{path} is not a readable SQLite database ({e}); check the file is complete "
            "(copy it again) or remove it from the source"
        ) from e


def _walk(root: Path) -> list[tuple[Path, list[str]]]:
    """Folders under ``root`` (itself included) with their file names, sorted; links to
    folders are not followed, so a link loop cannot trap the walk."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        found.append((Path(dirpath), sorted(filenames)))
    return found


class LocalSourceLocator:
    """Finds plates in a local folder or file (see :class:`celltable.domain.ports.SourceLocator`)."""

    def discover(self, source_path: str, preset: Preset) -> SourceLayout:
        root = Path(source_path).expanduser().absolute()
        if not root.exists():
            raise SourceNotFoundError(f"source {root} does not exist; check the path")
        if preset.source_format is SourceFormat.SQLITE:
            units, skipped = self._sqlite_units(root, preset)
        else:
            units, skipped = self._csv_units(root, preset)
        if not units:
            raise NoTablesFoundError(self._nothing_found(root, preset, skipped))
        return SourceLayout(str(root), tuple(units), tuple(skipped))

    @staticmethod
    def _key(root: Path, unit_path: Path) -> str:
        return root.name if unit_path == root else unit_path.relative_to(root).as_posix()

    def _sqlite_units(self, root: Path, preset: Preset) -> tuple[list[SourceUnit], list[str]]:
        if root.is_file():
            files = [root]
        else:
            files = [d / f for d, names in _walk(root) for f in names
                     if f.lower().endswith(SQLITE_SUFFIXES)]
        units, skipped = [], []
        for f in files:
            tables = []
            for name in sqlite_tables(f):
                table = preset.match_table(name)
                if table is not None:
                    tables.append(TableLocation(table, str(f), name))
            if tables:
                units.append(SourceUnit(self._key(root, f), SourceFormat.SQLITE, str(f), tuple(tables)))
            else:
                skipped.append(str(f))
        return units, skipped

    def _csv_units(self, root: Path, preset: Preset) -> tuple[list[SourceUnit], list[str]]:
        if root.is_file():
            hint = (" It looks like SQLite: try --preset cellprofiler_sqlite."
                    if root.suffix.lower() in SQLITE_SUFFIXES else "")
            raise NoTablesFoundError(
                f"{root} is a file; for CSV presets give the folder holding "
                f"{', '.join(t + '.csv' for t in preset.tables)}.{hint}"
            )
        units, skipped = [], []
        for folder, names in _walk(root):
            tables = []
            for name in names:
                stem, dot, suffix = name.rpartition(".")
                table = preset.match_table(stem) if dot and suffix.lower() == "csv" else None
                if table is None:
                    if name.lower().endswith(".csv"):
                        skipped.append(str(folder / name))
                    continue
                if any(t.table == table for t in tables):
                    raise SourceReadError(
                        f"{folder} holds two files for table {table} ({name} and another that "
                        "differs only in case); keep one"
                    )
                tables.append(TableLocation(table, str(folder / name), stem))
            if tables:
                units.append(SourceUnit(self._key(root, folder), SourceFormat.CSV, str(folder), tuple(tables)))
        return units, skipped

    @staticmethod
    def _nothing_found(root: Path, preset: Preset, skipped: list[str]) -> str:
        wanted = ", ".join((preset.image_table, *(c.table for c in preset.compartments)))
        hint = ""
        if preset.source_format is SourceFormat.CSV and (
            root.suffix.lower() in SQLITE_SUFFIXES
            or any(s.lower().endswith(SQLITE_SUFFIXES) for s in skipped)
        ):
            hint = "; it looks like SQLite: try --preset cellprofiler_sqlite"
        elif preset.source_format is SourceFormat.SQLITE and root.is_dir() and not skipped:
            hint = "; no SQLite files there: for CSV folders try --preset cellprofiler_csv"
        return (
            f"no tables of preset {preset.name!r} ({wanted}) found in {root}{hint}; "
            "`celltable presets` lists the layouts celltable knows"
        )


class LocalDestination:
    """Writes output under a hidden staging folder beside the destination, then renames it into
    place, so a failed conversion leaves nothing at the destination."""

    def __init__(self, scratch_dir: str | None = None) -> None:
        self._scratch_dir = scratch_dir
        self._dest: Path | None = None
        self._staging: Path | None = None
        self._output: Path | None = None
        self._overwrite = False

    def prepare(self, dest_path: str, *, folder: bool, overwrite: bool) -> StagingPaths:
        dest = Path(dest_path).expanduser().absolute()
        if dest.exists() or dest.is_symlink():
            if not overwrite:
                raise DestinationError(
                    f"destination {dest} exists; pass --overwrite (overwrite=True) to replace it"
                )
            if dest.is_dir() != folder:
                kind = "a folder" if dest.is_dir() else "a file"
                raise DestinationError(
                    f"destination {dest} is {kind}, but this conversion writes "
                    f"{'a folder' if folder else 'a file'}; remove it or choose another path"
                )
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            staging = dest.parent / f".{dest.name}.celltable-{uuid.uuid4().hex[:12]}"
            staging.mkdir()
            scratch = (
                Path(self._scratch_dir).expanduser().absolute() / staging.name
                if self._scratch_dir
                else staging / "scratch"
            )
            scratch.mkdir(parents=True)
        except OSError as e:
            raise DestinationError(f"cannot write beside {dest}: {e}") from e
        output = staging / dest.name
        if folder:
            output.mkdir()
        self._dest, self._staging, self._output, self._overwrite = dest, staging, output, overwrite
        self._scratch = scratch
        return StagingPaths(str(output), str(scratch))

    def publish(self) -> str:
        assert self._dest and self._output and self._staging, "prepare() first"
        dest, output = self._dest, self._output
        try:
            if output.is_dir() and dest.is_dir():
                old = self._staging / "replaced"
                dest.rename(old)
                output.rename(dest)
            else:
                output.replace(dest)  # atomic for files on one filesystem
        except OSError as e:
            raise DestinationError(f"cannot move the output into {dest}: {e}") from e
        self._cleanup()
        return str(dest)

    def discard(self) -> None:
        self._cleanup()

    def _cleanup(self) -> None:
        if self._staging is not None:
            shutil.rmtree(self._staging, ignore_errors=True)
            shutil.rmtree(self._scratch, ignore_errors=True)
        self._staging = None
