"""What the convert use case runs on: the adapters the composition root builds, and the
capacity (tasks at once, memory) its parallel arithmetic reads."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass

from celltable.domain.formats import PARQUET, OutputFormat
from celltable.domain.plan import auto_chunk_size
from celltable.domain.ports import (
    ChunkStore,
    Destination,
    ExperimentReader,
    ProgressListener,
    QueryEngine,
    SourceLocator,
    SourceSurveyor,
    TableWriter,
    TaskRunner,
    WorkerRecipe,
)
from celltable.domain.report import PeakMemory


@dataclass(frozen=True, slots=True)
class Capacity:
    """What a conversion may run at once: the one input of the use case's parallel arithmetic.

    Attributes:
        workers: Tasks in flight at once (at least 1).
        memory_budget: Bytes the tasks in flight share for their chunks.
    """

    workers: int
    memory_budget: int

    def chunk_rows(self, columns: int) -> int:
        """Base rows per chunk for an output of ``columns`` columns, each task's share of the
        memory budget bounding it."""
        return auto_chunk_size(columns, self.memory_budget // self.workers)

    def engine_share(self, plates: int) -> int:
        """How many tasks' worth of threads each plate's staging may use, ``plates`` being
        staged at once (more when plates are fewer than workers)."""
        return max(1, self.workers // max(1, plates))


@dataclass(frozen=True, slots=True)
class Services:
    """The adapters a conversion runs on, built by the composition root."""

    locator: SourceLocator
    engine: QueryEngine
    writer: TableWriter
    destination: Destination
    runner: TaskRunner
    memory_budget: int
    producer: str
    version: str
    surveyor: SourceSurveyor | None = None  # recognises sources no preset reads, when detecting
    progress: ProgressListener | None = None  # told after each plate staged and chunk written
    chunk_store: Callable[[str], ChunkStore] | None = None  # opens a resume folder's saves
    experiments: ExperimentReader | None = None  # CellProfiler's Experiment table of a plate
    peak_memory: Callable[[], PeakMemory | None] | None = None  # measured for the run report
    # each source file's version (size, modification time), to tell one changed during the run
    versions: Callable[[Sequence[str]], dict[str, str]] | None = None
    worker_recipe: WorkerRecipe | None = None
    """Set when tasks run in other processes (or machines): then each plate is read, joined and
    written by one task where it runs, which builds its adapters from this recipe."""
    output_format: OutputFormat = PARQUET  # what ``writer`` writes: its suffix, file or folder
    # Process-wide memory housekeeping, the composition root's to choose (CPython's garbage
    # collector tuned for few, large objects): held around the whole conversion, and called
    # after each chunk is written and let go.
    around_conversion: Callable[[], AbstractContextManager[object]] | None = None
    after_chunk: Callable[[], object] | None = None

    @property
    def capacity(self) -> Capacity:
        """Tasks at once (the runner's workers) and the memory they share."""
        return Capacity(max(1, self.runner.workers), self.memory_budget)
