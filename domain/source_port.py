"""The port of one source format (CSV, SQLite, NPZ ...): how its plates are found in a listed
source, checked at a first look, described and read. Re-exported by :mod:`celltable.domain.ports`.

Each format is one adapter module, listed by one line in :mod:`celltable.adapters.source_formats`;
nothing else branches on :class:`celltable.domain.presets.SourceFormat`. The reading methods take
the query engine adapter's context (``engine``: its connections and settings) and its
connections as opaque values: a reader is built from the format alone, so a worker process
builds it from a plate's location and the output plan."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

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


class SourceFormatReader(Protocol):
    """One source format."""

    format: SourceFormat
    label: str
    """The format's name in messages (``SQLite``)."""
    suffixes: tuple[str, ...]
    """The suffixes of its files, lower case (``.sqlite``, ``.db`` ...)."""
    suggested_preset: str
    """The preset to suggest when a source given another format's preset looks like this
    format (empty: none)."""
    memory_factor: int
    """About how many bytes of memory a plate staged in memory takes per byte of its files."""

    # finding and checking ----------------------------------------------------------------

    def find(self, tree: SourceTree, preset: Preset, where: Callable[[str], str],
             local: Callable[[str], str]) -> FoundPlates:
        """The plates of ``tree`` holding tables of ``preset`` (matched by exact name, ignoring
        case); ``where`` gives a relative path's location as plates name it, ``local`` its local
        file (for formats whose files are read to find their tables).

        Raises:
            NoTablesFoundError: The source cannot hold this format's plates (a file where a
                folder is needed).
            SourceReadError: A folder holds a table twice.
        """
        ...

    def nothing_found(self, tree: SourceTree, preset: Preset, skipped: Sequence[str]) -> str:
        """The message saying that ``tree`` holds no table of ``preset`` (``skipped``: the files
        passed over), with a hint at the preset to try when one is likely."""
        ...

    def listed_files(self, tree: SourceTree) -> tuple[str, ...] | None:
        """The relative paths of the files whose tables are known only once read (SQLite): a
        cloud source's are downloaded before matching, or listed as plates without tables for
        the worker converting each (:meth:`plates_of_file`); None when a listing is enough."""
        ...

    def plates_of_file(self, key: str, path: str, preset: Preset) -> tuple[Plate, ...]:
        """The plates of one local file of :meth:`listed_files` (none when it holds no table of
        ``preset``); ``key``: the plate key of the file."""
        ...

    def problem(self, path: str) -> str | None:
        """Why a file of a plate cannot be read, from a cheap first look (its last block, its
        array headers), or None."""
        ...

    def experiment(self, plate: Plate) -> tuple[tuple[str, str], ...]:
        """The plate's Experiment settings (``(key, value)`` pairs), empty when it has none.

        Raises:
            OSError: (or the format's own errors) They cannot be read; callers ignore it.
        """
        ...

    def where(self, loc: TableLocation) -> str:
        """A table as messages name it: its file, or its table in a file."""
        ...

    # reading -----------------------------------------------------------------------------

    def describe(self, engine: Any, plate: Plate, preset: Preset) -> PlateDescription:
        """Schemas, row counts, key counts and orphans of the plate's tables, nothing staged.

        Raises:
            SourceReadError: A table cannot be read.
        """
        ...

    def in_place(self, engine: Any, plate: Plate,
                 preset: Preset) -> tuple[tuple[StagedTable, ...], object] | None:
        """The plate's tables and the engine's handle on them if every table can be read in
        place, in storage order (image keys integer, none missing, non-decreasing); else None.
        """
        ...

    def stage(self, engine: Any, con: Any, plate: Plate, preset: Preset,
              parallel: int) -> tuple[StagedTable, ...]:
        """Copy the plate's tables into the engine's database ``con`` (up to ``parallel``
        tables at once).

        Raises:
            SourceReadError: A table cannot be read.
            SchemaError: Its image key does not hold whole numbers.
        """
        ...

    def chunks(self, engine: Any, staged: StagedPlate,
               queries: Sequence[ChunkQuery]) -> Iterator[dict[str, Any]]:
        """For a plate read in place, lazily and in order: each query's rows of every table it
        reads (Arrow tables by table name), each table read once.

        Raises:
            InPlaceReadFailed: A value unlike the type read at the start: stage a copy.
        """
        ...
