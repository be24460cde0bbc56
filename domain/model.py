"""Requests to convert and what a conversion reports back."""

from __future__ import annotations

from dataclasses import dataclass, field

from celltable.domain.errors import InvalidOptionError
from celltable.domain.presets import Preset

# The counts of an output table are report types, importable from here too.
from celltable.domain.report import PlateRows as PlateRows
from celltable.domain.report import RunReport, TableReport
from celltable.domain.sources import SkippedFile

EXECUTORS = ("threads", "htex")
"""Where tasks can run without a Parsl configuration: local threads or local processes."""

SQLITE_READERS = ("auto", "arrow", "extension")
"""How SQLite files can be read (``CELLTABLE_SQLITE_READER``): ``auto`` takes DuckDB's SQLite
extension when it matches DuckDB, else ``arrow`` (ADBC)."""

PARTITIONS = (None, "plate")
"""How an output table may be split into files: not at all, or one file per plate."""


@dataclass(frozen=True, slots=True)
class ConversionOptions:
    """Advanced settings of a conversion; every field has a sensible default.

    Attributes:
        join: One joined table (True) or one table per source table in a folder (False).
        chunk_size: Base-compartment rows per task; None chooses from the column count and memory.
        threads: Bound on the threads DuckDB, Arrow and the task executor use together;
            None means every core.
        overwrite: Replace an existing destination.
        join_sql: Expert override: a SELECT over the tables ``Image`` and the compartment names,
            run once per plate instead of the derived join.
        memory_limit: Memory DuckDB may use per task before spilling to disk (``"2GB"``), and
            the bound under which a plate is staged in memory rather than in a file;
            None chooses half the machine's memory shared among the tasks.
        compression: Parquet compression codec.
        staging_dir: Where intermediate data is kept while converting; None picks a folder beside
            the destination, removed afterwards.
        executor: Where tasks run: ``"threads"`` (local threads) or ``"htex"`` (local worker
            processes, Parsl's HighThroughputExecutor). A ``parsl_config`` wins over it.
        workers: Tasks run at once (threads or worker processes); None chooses from ``threads``.
        local_cache_dir: Where cloud sources (``s3://``, ``gs://``, ``az://``) are downloaded
            and cloud destinations staged; files already there are reused when their size and
            modification time match. None means ``$CELLTABLE_LOCAL_CACHE_DIR``, else
            ``~/.cache/celltable`` (on disk, never a RAM-backed temporary folder).
        no_sign_request: Read public buckets without credentials (like the AWS CLI's
            ``--no-sign-request``).
        cloud_client: A cloudpathlib client (``S3Client(endpoint_url=..., profile_name=...)``,
            ``GSClient(...)``, ``AzureBlobClient(...)``) used for cloud paths of its kind, for
            settings the SDK's environment does not carry; None builds one from that
            environment. Never logged or shown.
        report_path: Where the run report (JSON) is written once the output is published;
            None: beside the output, as ``<DEST>.report.json``; ``"-"``: not written (the
            result carries it; the command line prints it).
        resume: Save each finished chunk (in a folder kept beside the destination until the
            output is published) and reuse the chunks an earlier, interrupted run with
            ``resume`` saved, when nothing they depend on changed. Costs writing each chunk
            once more, compressed, to local disk.
        partition_by: ``"plate"``: write one Parquet file per plate (``DEST/<plate>.parquet``,
            or ``DEST/<table>/<plate>.parquet`` with ``join=False``), all with the same
            columns, instead of one file per table.
        skip_bad_files: Convert the plates whose files can all be read, and leave out (listing
            each in the run report, with why) files that cannot: empty, cut short, corrupt.
            False: a conversion meeting any fails before any data moves, naming them all.
        float32: Store feature columns that would be float64 as float32: half the size, about
            7 significant digits kept (keys and ``Metadata_*`` columns keep their type). Not
            with ``join_sql``, whose columns are the user's.
        format: The output format by name (``parquet``, ``h5ad``, ``zarr``; CytoTable's
            ``anndata_h5ad`` and ``anndata_zarr`` too); None infers it from the destination's
            suffix (Parquet when it has none).
    """

    join: bool = True
    chunk_size: int | None = None
    threads: int | None = None
    overwrite: bool = False
    join_sql: str | None = None
    memory_limit: str | None = None
    compression: str = "zstd"
    staging_dir: str | None = None
    executor: str = "threads"
    workers: int | None = None
    local_cache_dir: str | None = None
    no_sign_request: bool = False
    cloud_client: object | None = field(default=None, repr=False, compare=False)
    report_path: str | None = None
    resume: bool = False
    partition_by: str | None = None
    float32: bool = False
    skip_bad_files: bool = False
    format: str | None = None

    def __post_init__(self) -> None:
        if self.executor not in EXECUTORS:
            raise InvalidOptionError(f"executor must be one of {', '.join(EXECUTORS)}, not {self.executor!r}")
        if self.workers is not None and self.workers < 1:
            raise InvalidOptionError(f"workers must be at least 1, not {self.workers}")
        if self.chunk_size is not None and self.chunk_size < 1:
            raise InvalidOptionError(f"chunk_size must be a positive number of rows, not {self.chunk_size}")
        if self.partition_by not in PARTITIONS:
            raise InvalidOptionError(
                f"partition_by must be one of {', '.join(map(str, PARTITIONS))}, "
                f"not {self.partition_by!r}"
            )
        if self.float32 and self.join_sql:
            raise InvalidOptionError("float32 does not apply to join_sql: cast in the SQL "
                                     "instead (CAST(x AS FLOAT))")
        if self.threads is not None and self.threads < 1:
            raise InvalidOptionError(f"threads must be at least 1, not {self.threads}")


@dataclass(frozen=True, slots=True)
class ConversionRequest:
    """Convert ``source_path`` with ``preset`` into ``dest_path``."""

    source_path: str
    dest_path: str
    preset: Preset
    options: ConversionOptions = field(default_factory=ConversionOptions)


@dataclass(frozen=True, slots=True)
class ConversionResult:
    """What a conversion did.

    Attributes:
        dest_path: The published destination (a Parquet file, or a folder with ``join=False``).
        preset: The preset used.
        plates: The plates converted, as ``Metadata_TableNumber`` names them.
        source_rows: Rows read per source table, summed over plates.
        tables: One report per output table.
        duration_s: Wall time of the conversion in seconds.
        report: The run report: files found, used and skipped, rows per stage, columns a plate
            lacks and types cast, peak memory (:mod:`celltable.domain.report`).
        report_path: Where the report was written; None when it was not.
    """

    dest_path: str
    preset: str
    plates: tuple[str, ...]
    source_rows: tuple[tuple[str, int], ...]
    tables: tuple[TableReport, ...]
    duration_s: float
    report: RunReport | None = None
    report_path: str | None = None
    bad_files: tuple[SkippedFile, ...] = ()
    """Files left out because they cannot be read (with ``skip_bad_files``), with why."""

    @property
    def rows_out(self) -> int:
        return sum(t.rows_out for t in self.tables)

    @property
    def rows_dropped(self) -> int:
        return sum(t.dropped for t in self.tables)


STAGING = "staging"
"""The :attr:`Progress.stage` of reading the source plates, before any table is written."""

DOWNLOADING = "downloading"
"""The :attr:`Progress.stage` of fetching cloud files into the cache, before staging; its
``rows`` and ``rows_total`` count bytes."""


@dataclass(frozen=True, slots=True)
class Progress:
    """How far a conversion is: reported after each cloud file is downloaded, each plate is
    staged and each chunk is written.

    Attributes:
        stage: ``"downloading"`` while cloud files are fetched, ``"staging"`` while plates are
            read, then the output table being written (``"joined"``, or ``"Cells"`` ... with
            ``join=False``).
        done: Files downloaded, plates staged, or chunks written, so far.
        total: Files, plates, or chunks, in the stage.
        rows: Bytes downloaded, source rows staged, or base rows converted, so far.
        rows_total: Bytes to download, or base rows of the table's chunks; 0 while staging
            (not known yet).
        elapsed_s: Seconds since the stage began.
    """

    stage: str
    done: int
    total: int
    rows: int
    rows_total: int
    elapsed_s: float

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def eta_s(self) -> float | None:
        """Seconds left at the pace so far (by rows when their total is known, else by
        plates or chunks); None before anything is done."""
        done, total = (self.rows, self.rows_total) if self.rows_total else (self.done, self.total)
        if done <= 0 or self.elapsed_s <= 0:
            return None
        return max(0.0, (total - done) * self.elapsed_s / done)
