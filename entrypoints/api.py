"""The Python API: ``celltable.convert(...)`` mirrors ``celltable convert``."""

from __future__ import annotations

import os
from typing import Any

from celltable.application.convert import convert as convert_use_case
from celltable.bootstrap import bootstrap
from celltable.domain.errors import CelltableError
from celltable.domain.model import ConversionOptions, ConversionRequest, ConversionResult
from celltable.domain.presets import DEFAULT_PRESET, PRESETS, Preset, get_preset

DEST_DATATYPES = ("parquet",)


def convert(
    source_path: str | os.PathLike[str],
    dest_path: str | os.PathLike[str],
    dest_datatype: str = "parquet",
    preset: str | Preset = DEFAULT_PRESET,
    join: bool = True,
    chunk_size: int | None = None,
    parsl_config: Any = None,
    options: ConversionOptions | None = None,
) -> ConversionResult:
    """Convert image-analysis tables into one single-cell Parquet table (or one per table).

    Args:
        source_path: A folder of CSVs (one subfolder per plate allowed), a SQLite file, or a
            folder of SQLite files.
        dest_path: The Parquet file to write; with ``join=False``, a folder.
        dest_datatype: ``"parquet"``.
        preset: A preset name (see :func:`presets`) or a :class:`Preset`.
        join: One joined table, or one table per source table.
        chunk_size: Rows of the base compartment per task (None: chosen from memory).
        parsl_config: A ``parsl.Config`` to run tasks on (None: local threads).
        options: Advanced settings; ``join`` and ``chunk_size`` given here win over it.

    Returns:
        What was written: paths, rows in and out per table, rows dropped and why, duration.

    Raises:
        CelltableError: A named error whose message says what to do; nothing is written.

    Example:
        >>> result = celltable.convert("ExampleHuman/", "example.parquet")  # doctest: +SKIP
    """
    if dest_datatype not in DEST_DATATYPES:
        raise CelltableError(
            f"dest_datatype {dest_datatype!r} is not supported yet; use one of {DEST_DATATYPES}"
        )
    base = options or ConversionOptions()
    opts = ConversionOptions(
        join=join,
        chunk_size=chunk_size if chunk_size is not None else base.chunk_size,
        threads=base.threads,
        overwrite=base.overwrite,
        join_sql=base.join_sql,
        memory_limit=base.memory_limit,
        compression=base.compression,
        staging_dir=base.staging_dir,
    )
    request = ConversionRequest(
        source_path=os.fspath(source_path),
        dest_path=os.fspath(dest_path),
        preset=preset if isinstance(preset, Preset) else get_preset(preset),
        options=opts,
    )
    with bootstrap(
        threads=opts.threads,
        memory_limit=opts.memory_limit,
        compression=opts.compression,
        staging_dir=opts.staging_dir,
        parsl_config=parsl_config,
    ) as services:
        return convert_use_case(request, services)


def presets() -> dict[str, str]:
    """The built-in presets and their one-line descriptions."""
    return {name: p.description for name, p in sorted(PRESETS.items())}
