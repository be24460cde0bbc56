"""The ports: what the application needs from the outside world, one capability each."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from celltable.domain.detect import SourceSurvey
from celltable.domain.inspection import PlateDescription
from celltable.domain.join import ChunkQuery, SelectColumn
from celltable.domain.model import Progress
from celltable.domain.output_ports import OutputReader as OutputReader
from celltable.domain.output_ports import TableSink as TableSink
from celltable.domain.output_ports import TableWriter as TableWriter
from celltable.domain.presets import Preset
from celltable.domain.resume import SavedChunk
from celltable.domain.schema import Column
from celltable.domain.source_port import SourceFormatReader as SourceFormatReader
from celltable.domain.sources import ChunkOutput, Plate, SourceLayout, StagedPlate
from celltable.domain.warehouse import (
    Channel,
    CropOutput,
    FileIndex,
    ImageRows,
    ImageSet,
    TableFiles,
    TableState,
)

T = TypeVar("T")


class SourceLocator(Protocol):
    """Finds the plates and tables of a source."""

    def discover(self, source_path: str, preset: Preset) -> SourceLayout:
        """The plates under ``source_path`` holding tables of ``preset``.

        Raises:
            SourceNotFoundError: Nothing exists at ``source_path``.
            NoTablesFoundError: Nothing there matches the preset's tables (and no file that
                might is unreadable).

        Files of the preset's tables that cannot be read (empty, cut short, not a database)
        are not raised: the layout lists them in ``bad``, so all are named at once.
        """
        ...


class QueryEngine(Protocol):
    """Stages source tables and reads chunks of joins from them."""

    def stage(self, plate: Plate, preset: Preset, staging_dir: str,
              copy: bool = False, share: int = 1) -> StagedPlate:
        """Prepare the plate's tables for chunk queries: read them in place when their storage
        allows, else copy them once into a form chunk queries read fast (always with ``copy``).
        ``share``: how many tasks' worth of threads this staging may use (more than one when
        fewer plates are staged than tasks can run at once)."""
        ...

    def chunk_sources(self, staged: StagedPlate, queries: Sequence[ChunkQuery]) -> Iterator[object]:
        """In the caller's process, lazily and in order: what each query's task reads."""
        ...

    def read_chunk(self, source: object, query: ChunkQuery) -> ChunkOutput:
        """The rows of ``query`` for one chunk, from its ``chunk_sources`` item, with the counts
        the report needs. Runs as a task."""
        ...

    def read_sql(self, staged: StagedPlate, sql: str, plate_key: str,
                 views: Sequence[tuple[str, Sequence[SelectColumn]]] = ()) -> ChunkOutput:
        """The rows of a user's SELECT over the staged tables of one plate; ``views``: names the
        SELECT may read besides the tables, each the given columns of one table (CTEs)."""
        ...

    def release(self, staged: StagedPlate) -> None:
        """End what the plate's handle holds: its connection, a copy's file or memory (a plate
        read in place is the user's source, never touched)."""
        ...

    def describe(self, plate: Plate, preset: Preset) -> PlateDescription:
        """Schemas, row counts, key counts and orphans of a plate's tables, read straight from
        the source: nothing is staged, and only key columns are scanned.

        Raises:
            SourceReadError: A table cannot be read.
        """
        ...


class SourceSurveyor(Protocol):
    """Takes a cheap look at a source, to recognise kinds no preset reads."""

    def survey(self, source_path: str) -> SourceSurvey:
        """File suffixes under ``source_path`` and the headers of a few CSV files (bounded work,
        however large the source).

        Raises:
            SourceNotFoundError: Nothing exists at ``source_path``.
        """
        ...


class ExperimentReader(Protocol):
    """Reads the settings of the run that measured a plate (CellProfiler's Experiment table)."""

    def read(self, plate: Plate) -> tuple[tuple[str, str], ...]:
        """``(key, value)`` pairs (``CellProfiler_Version``, ``Run_Timestamp``,
        ``Pipeline_Pipeline`` ...); empty when the plate has none or it cannot be read."""
        ...


class ProgressListener(Protocol):
    """Told how far a conversion is, after each plate staged and each chunk written. Called in
    the converting thread: it should return quickly."""

    def __call__(self, progress: Progress, /) -> None: ...


@dataclass(frozen=True, slots=True)
class StagingPaths:
    """Local paths for a conversion in progress: ``output`` becomes the destination when
    published; ``scratch`` holds intermediate data and is removed either way; ``resume`` (only
    when asked for) is the same folder for every run to this destination, kept after a failure
    and removed once the output is published."""

    output: str
    scratch: str
    resume: str | None = None


class Destination(Protocol):
    """Stages output and publishes it atomically at the destination path."""

    def prepare(self, dest_path: str, *, folder: bool, overwrite: bool, resume: bool = False,
                sources: Sequence[str] = (), guarded: Sequence[tuple[str, str]] = (),
                shared: bool = False) -> StagingPaths:
        """Fresh local staging paths for the output (a file, or a folder of files), and with
        ``resume`` the destination's resume folder (created if missing, kept if present).
        With ``shared``, ``output`` is where workers elsewhere can write too: beside DEST, or
        for an object-store DEST a hidden prefix in the store itself.

        ``guarded``: other paths the conversion writes, as ``(option, path)`` (the report ...);
        with the destination, its staging and resume folders, they go through
        :func:`celltable.domain.paths.check_paths`, resolved the way this storage resolves.

        Raises:
            DestinationError: The destination exists and ``overwrite`` is false, it cannot be
                written, or a path it or ``guarded`` names breaks the path-safety rule (it is
                a source or lies inside one, or a source lies inside the destination).
        """
        ...

    def publish(self) -> str:
        """Move the staged output to the destination in one step and return its path; without
        ``overwrite``, never over a destination that appeared since ``prepare``.

        Raises:
            DestinationError: The destination appeared meanwhile (it is left as it is).
        """
        ...

    def discard(self) -> None:
        """Remove the staged output (after a failure); the destination stays untouched, and so
        does the resume folder."""
        ...

    def write_text(self, path: str, text: str) -> str:
        """Write a small text file (the run report) at ``path``, local or of this destination's
        kind, in one step (replacing any file there), and return where it went.

        Raises:
            DestinationError: It cannot be written there.
        """
        ...


class ChunkStore(Protocol):
    """Keeps each chunk's output of a resumable conversion until the conversion is published,
    so a rerun after a crash reuses the chunks already done (see ``celltable.domain.resume``)."""

    def versions(self, paths: Sequence[str]) -> dict[str, str]:
        """Each source file's version (size and modification time): a changed source must
        not reuse chunks made from it."""
        ...

    def saved(self, key: str) -> SavedChunk | None:
        """The chunk saved under ``key``, if one was saved completely and its bytes still match
        its checksum; None otherwise (a damaged save is forgotten)."""
        ...

    def save(self, key: str, output: ChunkOutput) -> None:
        """Save a chunk's output durably (written, flushed, then recorded)."""
        ...

    def load(self, saved: SavedChunk) -> object:
        """The rows of a saved chunk, as the engine produced them."""
        ...


class TaskRunner(Protocol):
    """Runs tasks, possibly elsewhere; the futures resolve to the tasks' results."""

    @property
    def workers(self) -> int:
        """How many tasks run at once."""
        ...

    def submit(self, fn: Callable[..., T], /, *args: Any) -> Future[T]: ...


class PlateWorker(Protocol):
    """What a plate task builds where it runs (a worker process, maybe another machine) from
    the recipe the composition root passed: its own engine, and how it reaches files."""

    @property
    def engine(self) -> QueryEngine: ...

    @property
    def read_ahead(self) -> bool:
        """Whether a plate's next chunk should be read while this one is written (the worker
        has more than one core)."""
        ...

    def plates_of(self, plate: Plate, preset: Preset) -> tuple[Plate, ...]:
        """The plate(s) of ``plate`` with files readable here: a cloud plate downloaded into this
        worker's cache (a cloud SQLite file listed without its tables gets them, one plate per
        run of a multi-run file); a local plate as it is."""
        ...

    def versions(self, paths: Sequence[str]) -> dict[str, str]:
        """Each local file's version (size and modification time)."""
        ...

    def usable(self, staged: StagedPlate) -> bool:
        """Whether a plate staged elsewhere (or earlier) can be read here as it is."""
        ...

    def experiment(self, plate: Plate) -> tuple[tuple[str, str], ...]:
        """A plate's Experiment table, read here (see :class:`ExperimentReader`)."""

    def check_writer(self) -> None:
        """Build the output format's writer here now: a worker without the format's optional
        libraries fails its first survey task, before any plate is written.

        Raises:
            MissingExtraError: The format's extra is not installed where this runs.
        """
        ...

    def open_sink(self, path: str, columns: Sequence[Column], rows: int = 0) -> TableSink:
        """A new output file at ``path`` (local, or an object store's URI): the one place a
        plate task creates its writer."""
        ...

    def finish(self, sink: TableSink, path: str,
               metadata: Mapping[str, str]) -> tuple[int, int, Mapping[str, str]]:
        """Close ``sink`` with ``metadata``; the rows it holds, its bytes and the records the
        writer added (checksum, column digests)."""
        ...

    def read_text(self, path: str) -> str | None:
        """A small text file's content, None when it is missing."""
        ...

    def write_text(self, path: str, text: str) -> None:
        """Write a small text file in one step (a plate's record, after its files; a folder's
        manifest), locally or in an object store."""
        ...

    def size(self, path: str) -> int | None:
        """A file's bytes, None when it is missing."""
        ...

    def move(self, source: str, target: str) -> None:
        """Move a finished file into the output being staged."""
        ...


class WorkerRecipe(Protocol):
    """A picklable description of the adapters a plate task needs, built where it runs."""

    def build(self) -> PlateWorker: ...


class Warehouse(Protocol):
    """An Iceberg warehouse: tables that grow by one snapshot per conversion."""

    def prepare(self, *, append: bool) -> str:
        """A fresh local folder for the conversion's data files.

        Raises:
            WarehouseError: It exists and ``append`` is false, or not and ``append`` is true.
        """
        ...

    def plates(self, namespace: str, table: str) -> tuple[str, ...]:
        """The plates a table holds (empty when it does not exist)."""
        ...

    def commit(self, tables: Sequence[TableFiles],
               properties: Mapping[str, str]) -> tuple[TableState, ...]:
        """Add each table's data files in one commit per table; after a failure every table is
        at its previous snapshot.

        Raises:
            WarehouseError: A commit failed.
        """
        ...

    def discard(self, failed: bool = False) -> None:
        """Remove the staging folder and what is left in it; with ``failed``, also the
        warehouse itself when this conversion created it."""
        ...


class ImageCropper(Protocol):
    """Finds image files and cuts objects' crops from them."""

    def columns(self, profiles: str) -> tuple[str, ...]:
        """The column names of a profiles data file."""
        ...

    def data_files(self, profiles: str) -> tuple[str, ...]:
        """The profiles' data file, or a folder's (one per plate), in name order."""

    def index(self, folder: str) -> FileIndex:
        """The files under ``folder`` by name.

        Raises:
            ImageFileError: The folder does not exist.
        """
        ...

    def image_rows(self, profiles: str, channels: Sequence[Channel],
                   bbox: Sequence[str]) -> Iterator[ImageRows]:
        """The objects of each image of a profiles data file, image by image."""
        ...

    def crop(self, sets: Sequence[ImageSet], path: str, skip_bad_files: bool) -> CropOutput:
        """Crop every object of ``sets`` (each file read once) into a data file at ``path``.
        Runs as a task."""
        ...
