"""The Python API: ``celltable.convert(...)``, ``inspect(...)`` and ``validate(...)`` mirror the
commands of the same names."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from celltable.api_presets import (
    MAX_PRESET_BYTES,
    PresetChanges,
    load_preset,
    presets,
    resolve_preset,
)
from celltable.application.convert import Services
from celltable.application.convert import convert as convert_use_case
from celltable.application.detect import detect as detect_use_case
from celltable.application.detect import preset_to_convert
from celltable.application.inspect import Inspection, InspectServices
from celltable.application.inspect import inspect as inspect_use_case
from celltable.application.validate import validate as validate_use_case
from celltable.application.warehouse import (
    WarehouseRequest,
    WarehouseResult,
    convert_to_warehouse,
)
from celltable.bootstrap import (
    bootstrap,
    bootstrap_warehouse,
    crop_pixels,
    inspection,
    output_format_of,
    validation,
    warehouse_adapters,
)
from celltable.domain.detect import Detection
from celltable.domain.errors import (
    CelltableError,
    InvalidOptionError,
    InvalidPresetError,
    OutputFormatError,
)
from celltable.domain.model import (
    EXECUTORS,
    ConversionOptions,
    ConversionRequest,
    ConversionResult,
)
from celltable.domain.ports import ProgressListener
from celltable.domain.presets import Preset
from celltable.domain.report import report_json
from celltable.domain.validation import ValidationReport
from celltable.domain.warehouse import (
    CATALOG_FILE,
    ICEBERG,
    IcebergOptions,
    ImageOptions,
    TableState,
)
from celltable.logs import route_to_stdlib_unless_configured
from celltable.settings import package_version

# What the command line and other programs use besides the functions below.
__all__ = [
    "EXECUTORS",
    "MAX_PRESET_BYTES",
    "CelltableError",
    "ConversionOptions",
    "ConversionResult",
    "Detection",
    "IcebergOptions",
    "ImageOptions",
    "Inspection",
    "InvalidOptionError",
    "InvalidPresetError",
    "Preset",
    "PresetChanges",
    "TableState",
    "ValidationReport",
    "WarehouseResult",
    "check_format",
    "convert",
    "crop_to_numpy",
    "describe_warehouse",
    "detect",
    "inspect",
    "is_warehouse",
    "load_preset",
    "presets",
    "read",
    "report_json",
    "resolve_preset",
    "validate",
    "version",
]


def version() -> str:
    """celltable's version."""
    return package_version()


def convert(
    source_path: str | os.PathLike[str],
    dest_path: str | os.PathLike[str],
    dest_datatype: str | None = None,
    preset: str | os.PathLike[str] | Preset | None = None,
    join: bool | None = None,
    chunk_size: int | None = None,
    parsl_config: Any = None,
    options: ConversionOptions | None = None,
    progress: ProgressListener | None = None,
    skip_bad_files: bool | None = None,
    format: str | None = None,
    iceberg: IcebergOptions | None = None,
    changes: PresetChanges | None = None,
    on_detected: Callable[[Detection], None] | None = None,
) -> ConversionResult | WarehouseResult:
    """Convert image-analysis tables into one single-cell table (or one per table): Parquet,
    or AnnData (``.h5ad``, ``.zarr``); or into an Iceberg warehouse of profiles and image
    crops.

    Args:
        source_path: CellProfiler or cytominer-database output (a folder of CSVs, one
            subfolder per plate allowed; a SQLite file or a folder of them), a folder of
            DeepProfiler ``.npz`` files or IN Carta CSV exports, or a ``.txt`` manifest; local
            or in the cloud (``s3://``, ``gs://``, ``az://``).
        dest_path: The file to write (a Zarr store is a folder); with ``join=False`` or
            ``partition_by``, a folder of them; for Iceberg, the warehouse folder (see
            docs/iceberg.md). Local or cloud. Its suffix (``.parquet``, ``.h5ad``, ``.zarr``,
            ``.iceberg``) chooses the format when none is given.
        dest_datatype: CytoTable's name for the format: ``"parquet"``, ``"anndata_h5ad"``,
            ``"anndata_zarr"``, ``"iceberg"`` (the same as ``format``).
        preset: A preset name (see :func:`presets`), the path of a preset file (``.toml``,
            see :func:`load_preset`) or a :class:`Preset`; None detects it from the source
            (see :func:`detect`).
        join: One joined table, or one table per source table (None: ``options.join``,
            joined by default).
        chunk_size: Rows of the base compartment per task (None: chosen from memory).
        parsl_config: A ``parsl.Config`` to run tasks on, or the path of a Python file
            defining one as ``config`` (None: ``options.executor``, local threads by default).
        options: Advanced settings; ``join``, ``chunk_size`` and ``skip_bad_files``, when
            given here, win over its own.
        progress: Called with a :class:`celltable.Progress` after each cloud file downloaded
            (stage ``"downloading"``, counting bytes), each plate staged and each
            chunk written (from the calling thread); None (the default) reports nothing.
        skip_bad_files: Convert the plates whose files can be read and list the others, with
            why, in the run report and ``result.bad_files`` (None: ``options.skip_bad_files``,
            off by default: a source holding any bad file fails, naming them all).
        format: The output format: ``"parquet"``, ``"h5ad"``, ``"zarr"`` or ``"iceberg"``
            (None: ``options.format``; else Iceberg when DEST is a warehouse or ``iceberg`` is
            given; else DEST's suffix, else Parquet). AnnData needs the ``[anndata]`` extra,
            Iceberg the ``[iceberg]`` extra.
        iceberg: For Iceberg: append, the catalog, and the images to crop
            (:class:`celltable.IcebergOptions`); ``skip_bad_files`` also leaves out the crops
            of image files that cannot be read.
        changes: Compartments and relationships added or dropped, or another base, applied
            to ``preset`` (or to the detected one), as the command line's options do.
        on_detected: Called with the detection when the preset is detected, before anything
            is converted.

    Returns:
        What was written: paths, rows in and out per table, rows dropped and why, duration
        (for a warehouse, a :class:`celltable.WarehouseResult`: that, the crops, and each
        table's rows and snapshots).

    Raises:
        CelltableError: A named error whose message says what to do; nothing is written.

    Example:
        >>> result = celltable.convert("ExampleHuman/", "example.parquet")  # doctest: +SKIP
    """
    route_to_stdlib_unless_configured()
    base = options or ConversionOptions()
    asked = {n for n in (format, dest_datatype) if n is not None}
    if len(asked) > 1:
        raise OutputFormatError(f"format={format!r} and dest_datatype={dest_datatype!r} "
                                "disagree; give one of them")
    fmt = asked.pop() if asked else base.format
    if fmt is None and (iceberg is not None or is_warehouse(dest_path)):
        fmt = ICEBERG.name  # an existing warehouse grows; Iceberg options say it too
    opts = replace(
        base, join=join if join is not None else base.join,
        chunk_size=chunk_size if chunk_size is not None else base.chunk_size,
        skip_bad_files=skip_bad_files if skip_bad_files is not None else base.skip_bad_files,
        format=fmt,
    )
    source, dest = _path(source_path), _path(dest_path)
    given = resolve_preset(preset)
    if given is not None and changes:
        given = changes.applied(given)
    if output_format_of(dest, opts.format, source).warehouse:
        with bootstrap_warehouse(source, dest, opts, iceberg or IcebergOptions(),
                                 parsl_config=parsl_config, progress=progress) as w:
            chosen = given or _detected(source, w.services, changes, on_detected)
            return convert_to_warehouse(
                WarehouseRequest(ConversionRequest(source, dest, chosen, opts),
                                 iceberg or IcebergOptions()),
                w.services, w.warehouse, w.cropper, w.reports)
    with bootstrap(source, dest, opts, parsl_config=parsl_config, progress=progress) as services:
        chosen = given or _detected(source, services, changes, on_detected)
        if iceberg is not None:
            raise InvalidOptionError(f"Iceberg options do not apply to the "
                                     f"{services.output_format.name} format")
        return convert_use_case(ConversionRequest(source, dest, chosen, opts), services)


def _detected(source: str, services: Services | InspectServices,
              changes: PresetChanges | None = None,
              on_detected: Callable[[Detection], None] | None = None) -> Preset:
    """The preset reading ``source``, detected (and changed by ``changes``)."""
    detection = detect_use_case(source, services.locator, services.surveyor)
    chosen = preset_to_convert(detection)
    if on_detected is not None:
        on_detected(detection)
    return changes.applied(chosen) if changes else chosen


def check_format(source_path: str, dest_path: str, options: ConversionOptions) -> str:
    """The name of the format :func:`convert` would write ``dest_path`` in, checked before
    anything is read (the command line asks first).

    Raises:
        OutputFormatError: It cannot be chosen; the message says how to choose one.
    """
    return output_format_of(_path(dest_path), options.format, _path(source_path)).name


def _path(path: str | os.PathLike[str]) -> str:
    # A cloudpathlib path's __fspath__ would download it: its URI is what is meant.
    return str(path) if hasattr(path, "cloud_prefix") else os.fspath(path)


def detect(source_path: str | os.PathLike[str],
           options: ConversionOptions | None = None) -> Detection:
    """The kind of source at ``source_path`` and the built-in preset that reads it.

    Example:
        >>> celltable.detect("NF1.sqlite").preset  # doctest: +SKIP
        'cellprofiler_sqlite'
    """
    route_to_stdlib_unless_configured()
    source = _path(source_path)
    with inspection(source, options) as services:
        return detect_use_case(source, services.locator, services.surveyor)


def inspect(source_path: str | os.PathLike[str],
            preset: str | os.PathLike[str] | Preset | None = None,
            options: ConversionOptions | None = None,
            changes: PresetChanges | None = None) -> Inspection:
    """What a source holds, cheaply (nothing is converted): its kind and preset, plates,
    tables with rows, columns and key columns, and issues (missing tables, orphans ...).

    Args:
        source_path: As for :func:`convert`.
        preset: The preset to read it with; None detects it.
        options: Only ``threads``, ``memory_limit`` and the cloud settings are used.
        changes: As for :func:`convert`: applied to ``preset``, or to the detected one.

    Raises:
        CelltableError: The source does not exist, is unreadable, or holds nothing recognised.

    Example:
        >>> report = celltable.inspect("NF1.sqlite")  # doctest: +SKIP
        >>> [i.message for i in report.issues]  # doctest: +SKIP
    """
    route_to_stdlib_unless_configured()
    source = _path(source_path)
    given = resolve_preset(preset)
    if given is not None and changes:
        given = changes.applied(given)
    with inspection(source, options) as services:
        if given is None and changes:
            given = _detected(source, services, changes)
        return inspect_use_case(source, services, given)


def validate(dest_path: str | os.PathLike[str], *, no_sign_request: bool = False,
             cloud_client: Any = None, local_cache_dir: str | None = None) -> ValidationReport:
    """Re-read an output of :func:`convert` and check its rows, schema, null counts and key
    digest against what was recorded when it was written. A mismatch is a failed check
    (``report.ok`` is False), not an exception. ``dest_path`` may be in the cloud (``s3://``,
    ``gs://``, ``az://``): its files are downloaded into the cache (``local_cache_dir``) first;
    ``no_sign_request`` and ``cloud_client`` work as for :func:`convert`.

    Raises:
        CelltableError: Nothing at ``dest_path``, not a readable Parquet file, or not written by
            celltable.

    Example:
        >>> celltable.validate("example.parquet").ok  # doctest: +SKIP
        True
    """
    route_to_stdlib_unless_configured()
    dest = os.fspath(dest_path)
    with validation(dest, warehouse=is_warehouse(dest), local_cache_dir=local_cache_dir,
                    no_sign_request=no_sign_request, cloud_client=cloud_client) as reader:
        return validate_use_case(dest, reader)


def is_warehouse(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a local warehouse folder (it holds the catalog celltable made)."""
    p = _path(path)
    return "://" not in p and (Path(p) / CATALOG_FILE).is_file()


def read(dest_path: str | os.PathLike[str], table: str = "profiles.joined_profiles",
         columns: list[str] | tuple[str, ...] | None = None, filter: str | None = None,
         catalog_uri: str | None = None, catalog_options: dict[str, str] | None = None) -> Any:
    """Rows of a warehouse table as an Arrow table; ``filter`` (pyiceberg's expression text,
    ``"Metadata_Well == 'A01' and Metadata_ObjectNumber < 10"``) is pushed into the scan, so
    only the data files and row groups that can match are read.

    Args:
        dest_path: The warehouse folder (or, with ``catalog_uri``, its location).
        table: ``namespace.table``: ``profiles.joined_profiles`` (the default) or
            ``images.image_crops``; a bare name is looked up in either.
        columns: The columns to read (None: all).
        filter: A row filter (None: every row).

    Raises:
        CelltableError: Not a warehouse, no such table, or a bad filter.

    Example:
        >>> crops = celltable.read("wh", "images.image_crops",
        ...                        filter="Metadata_ObjectNumber == 5")  # doctest: +SKIP
        >>> celltable.crop_to_numpy(crops["ome_arrow_image"][0]).shape  # doctest: +SKIP
    """
    route_to_stdlib_unless_configured()
    warehouse, _ = warehouse_adapters(_path(dest_path), catalog_uri, catalog_options or {})
    return warehouse.scan(table, columns, filter)


def describe_warehouse(dest_path: str | os.PathLike[str], catalog_uri: str | None = None,
                       catalog_options: dict[str, str] | None = None) -> tuple[TableState, ...]:
    """The tables of a warehouse: rows, snapshots, columns and location of each.

    Raises:
        CelltableError: Not a warehouse.
    """
    route_to_stdlib_unless_configured()
    warehouse, _ = warehouse_adapters(_path(dest_path), catalog_uri, catalog_options or {})
    return warehouse.tables()


def crop_to_numpy(crop: Any) -> Any:
    """A crop of ``images.image_crops`` (an ``ome_arrow_*`` value: Arrow scalar or dict) as a
    NumPy array of the image's type, equal to the image's bounding-box slice.

    Raises:
        ValueError: ``crop`` is null or not an OME-Arrow struct.
    """
    return crop_pixels(crop)
