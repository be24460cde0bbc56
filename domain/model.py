"""Requests to convert and what a conversion reports back."""

from __future__ import annotations

from dataclasses import dataclass, field

from celltable.domain.presets import Preset


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
        memory_limit: Memory DuckDB may use per task before spilling to disk (``"2GB"``);
            None chooses half the machine's memory shared among the tasks.
        compression: Parquet compression codec.
        staging_dir: Where intermediate data is kept while converting; None picks a folder beside
            the destination, removed afterwards.
    """

    join: bool = True
    chunk_size: int | None = None
    threads: int | None = None
    overwrite: bool = False
    join_sql: str | None = None
    memory_limit: str | None = None
    compression: str = "zstd"
    staging_dir: str | None = None

    def __post_init__(self) -> None:
        if self.chunk_size is not None and self.chunk_size < 1:
            raise ValueError(f"chunk_size must be a positive number of rows, not {self.chunk_size}")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads must be at least 1, not {self.threads}")


@dataclass(frozen=True, slots=True)
class ConversionRequest:
    """Convert ``source_path`` with ``preset`` into ``dest_path``."""

    source_path: str
    dest_path: str
    preset: Preset
    options: ConversionOptions = field(default_factory=ConversionOptions)


@dataclass(frozen=True, slots=True)
class TableReport:
    """One output table: where it went, its rows and columns, and what became of its input rows.

    ``rows_in`` counts the rows of the base table read (the base compartment for a join);
    ``dropped`` counts base rows left out because a partner is missing, and ``missing`` splits
    them by relationship (``Cytoplasm.Parent_Cells -> Cells``); a row missing several partners
    counts once under each.
    """

    name: str
    path: str
    rows_in: int
    rows_out: int
    columns: int
    dropped: int = 0
    missing: tuple[tuple[str, int], ...] = ()

    @property
    def unaccounted(self) -> int:
        """Rows in minus rows out minus rows dropped: zero unless parent keys are duplicated
        (then negative: a base row matched several partners)."""
        return self.rows_in - self.rows_out - self.dropped


@dataclass(frozen=True, slots=True)
class ConversionResult:
    """What a conversion did.

    Attributes:
        dest_path: The published destination (a Parquet file, or a folder with ``join=False``).
        preset: The preset used.
        plates: The source units (plates) converted, as ``Metadata_TableNumber`` names them.
        source_rows: Rows read per source table, summed over plates.
        tables: One report per output table.
        duration_s: Wall time of the conversion in seconds.
    """

    dest_path: str
    preset: str
    plates: tuple[str, ...]
    source_rows: tuple[tuple[str, int], ...]
    tables: tuple[TableReport, ...]
    duration_s: float

    @property
    def rows_out(self) -> int:
        return sum(t.rows_out for t in self.tables)
