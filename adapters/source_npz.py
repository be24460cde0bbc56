"""DeepProfiler NPZ sources: a folder of ``<well>_<site>.npz`` files a plate, each file a site
(an image) of one table, the preset's base compartment. Implements
:class:`celltable.domain.ports.SourceFormatReader`; registered in
``adapters/source_formats.py``. The files themselves are read by ``adapters/npz.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from celltable.domain.inspection import PlateDescription
from celltable.domain.join import ChunkQuery
from celltable.domain.presets import Preset, SourceFormat
from celltable.domain.sources import (
    FoundPlates,
    Plate,
    SourceTree,
    StagedPlate,
    StagedTable,
    TableLocation,
)

if TYPE_CHECKING:
    import duckdb


@dataclass(frozen=True, slots=True)
class NpzFormat:
    """Implements :class:`celltable.domain.ports.SourceFormatReader` for NPZ files."""

    format: SourceFormat
    label = "NPZ"
    suffixes = (".npz",)
    suggested_preset = ""  # recognised by detection's survey, not hinted at
    memory_factor = 1

    def find(self, tree: SourceTree, preset: Preset, where: Callable[[str], str],
             local: Callable[[str], str]) -> FoundPlates:
        """Every folder holding ``.npz`` files a plate (DeepProfiler writes
        ``<plate>/<well>_<site>.npz``), each file a site of it, in name order; a lone file is a
        plate of one site."""
        def plate(rel: str, files: list[str]) -> Plate:
            tables = tuple(TableLocation(preset.base, where(f), Path(f or tree.name).stem)
                           for f in files)
            return Plate(tree.key(rel), self.format, where(rel), tables)

        if tree.is_file:
            return FoundPlates((plate("", [""]),) if tree.name.lower().endswith(".npz") else ())
        found = [(d, [tree.join(d, f) for f in names if f.lower().endswith(".npz")])
                 for d, names in tree.folders]
        return FoundPlates(tuple(plate(d, files) for d, files in found if files))

    def nothing_found(self, tree: SourceTree, preset: Preset, skipped: Sequence[str]) -> str:
        return (f"no .npz files (DeepProfiler features) found in {tree.location}; "
                "`celltable presets` lists the layouts celltable knows")

    def listed_files(self, tree: SourceTree) -> tuple[str, ...] | None:
        return None  # every .npz file is a site

    def plates_of_file(self, key: str, path: str, preset: Preset) -> tuple[Plate, ...]:
        raise NotImplementedError("NPZ plates are found from a listing")

    def problem(self, path: str) -> str | None:
        from celltable.adapters.file_checks import npz_problem

        return npz_problem(Path(path))

    def experiment(self, plate: Plate) -> tuple[tuple[str, str], ...]:
        return ()  # the metadata of each site is in its rows

    def where(self, loc: TableLocation) -> str:
        return loc.path

    def describe(self, engine: Any, plate: Plate, preset: Preset) -> PlateDescription:
        from celltable.adapters.npz import describe_npz

        return describe_npz(plate, preset)

    def in_place(self, engine: Any, plate: Plate,
                 preset: Preset) -> tuple[tuple[StagedTable, ...], object] | None:
        """Always: each chunk reads its sites' files (only a user's SQL needs a copy)."""
        from celltable.adapters.duckdb_handles import InPlace
        from celltable.adapters.npz import plate_table

        return (plate_table(plate, preset),), InPlace()

    def stage(self, engine: Any, con: duckdb.DuckDBPyConnection, plate: Plate,
              preset: Preset, parallel: int) -> tuple[StagedTable, ...]:
        from celltable.adapters.npz import stage_npz

        return (stage_npz(con, plate, preset),)  # the plate's files are sites of one table

    def chunks(self, engine: Any, staged: StagedPlate,
               queries: Sequence[ChunkQuery]) -> Iterator[dict[str, Any]]:
        from celltable.adapters.npz import chunk_rows

        return chunk_rows(staged, queries)

