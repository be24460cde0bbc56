"""The composition root: the one module that builds adapters and hands them to use cases.

Each use case gets its named dependencies from one context manager here: :func:`bootstrap`
(convert), :func:`bootstrap_warehouse` (convert into a warehouse), :func:`inspection` (detect
and inspect) and :func:`validation` (validate). Settings are resolved once per run
(:class:`Settings`); Arrow's thread pool is bounded only while the context is open. Adapters a
caller gives (tests give fakes) travel by name in :class:`Adapters`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from celltable.application.convert import Services
from celltable.application.inspect import InspectServices
from celltable.domain.errors import OutputFormatError
from celltable.domain.formats import PARQUET, OutputFormat, choose_format
from celltable.domain.model import ConversionOptions
from celltable.domain.ports import (
    ChunkStore,
    Destination,
    ImageCropper,
    OutputReader,
    ProgressListener,
    QueryEngine,
    SourceLocator,
    SourceSurveyor,
    TableWriter,
    TaskRunner,
    Warehouse,
)
from celltable.domain.warehouse import IcebergOptions
from celltable.settings import Settings, package_version, parse_size

PRODUCER = "celltable"

__all__ = ["Adapters", "Settings", "WarehouseServices", "bootstrap", "bootstrap_warehouse",
           "inspection", "package_version", "parse_size", "validation"]


@dataclass(frozen=True, slots=True)
class Adapters:
    """Adapters to use instead of the real ones, each named by its port (tests give fakes);
    None builds the real one."""

    locator: SourceLocator | None = None
    surveyor: SourceSurveyor | None = None
    engine: QueryEngine | None = None
    writer: TableWriter | None = None
    destination: Destination | None = None
    runner: TaskRunner | None = None
    """A context manager: opened for the conversion, as the real one is."""
    chunk_store: Callable[[str], ChunkStore] | None = None
    versions: Callable[[Sequence[str]], dict[str, str]] | None = None


@dataclass(frozen=True, slots=True)
class WarehouseServices:
    """What a conversion into a warehouse runs on: a conversion's services staging the
    profiles locally, the warehouse, the image cropper, and DEST's own kind of destination,
    which writes the run report beside it."""

    services: Services
    warehouse: Warehouse
    cropper: ImageCropper
    reports: Destination


@contextmanager
def bootstrap(source_path: str = "", dest_path: str = "",
              options: ConversionOptions | None = None, *, parsl_config: Any = None,
              progress: ProgressListener | None = None,
              given: Adapters | None = None) -> Iterator[Services]:
    """Services for one conversion: real adapters unless ``given``.

    The locator and the destination are chosen by the scheme of ``source_path`` and
    ``dest_path`` (``s3://``, ``gs://``, ``az://``: cloud; anything else: local), the writer by
    the output format (``options.format``, else DEST's suffix; see
    :func:`celltable.domain.formats.choose_format`). ``parsl_config`` is a ``parsl.Config`` or
    the path of a Python file defining ``config``; when None, ``options.workers`` tasks run on
    ``options.executor``. When that runs tasks in other processes, each plate is one task built
    from a recipe (``worker_recipe``), unless ``options.join_sql`` is given (chunks return to
    this process)."""
    with _conversion(source_path, dest_path, options or ConversionOptions(), parsl_config,
                     progress, given or Adapters()) as (services, _):
        yield services


@contextmanager
def bootstrap_warehouse(source_path: str, dest_path: str, options: ConversionOptions,
                        iceberg: IcebergOptions, *, parsl_config: Any = None,
                        progress: ProgressListener | None = None) -> Iterator[WarehouseServices]:
    """Services for a conversion into the warehouse at ``dest_path``: the profiles are staged
    on local disk whatever DEST is, then committed into the warehouse.

    Raises:
        MissingExtraError: pyiceberg or tifffile is not installed.
    """
    from celltable.adapters.storage import LocalDestination

    warehouse, cropper = warehouse_adapters(dest_path, iceberg.catalog_uri,
                                            iceberg.catalog_options)
    local = Adapters(destination=LocalDestination(options.staging_dir))
    with _conversion(source_path, dest_path, options, parsl_config, progress,
                     local) as (services, reports):
        yield WarehouseServices(services, warehouse, cropper, reports)


@contextmanager
def _conversion(source_path: str, dest_path: str, opts: ConversionOptions, parsl_config: Any,
                progress: ProgressListener | None,
                given: Adapters) -> Iterator[tuple[Services, Destination]]:
    """A conversion's services, and DEST's own kind of destination."""
    from celltable.adapters.formats import WriterSettings, writer
    from celltable.adapters.garbage_collector import chunk_released, frozen_heap
    from celltable.adapters.peak_memory import peak_memory

    fmt = output_format_of(dest_path, opts.format, source_path)
    settings = Settings.resolve(opts.threads, opts.memory_limit, workers=opts.workers,
                                local_cache_dir=opts.local_cache_dir)
    in_memory = parsl_config is None and opts.executor == "threads"
    if isinstance(parsl_config, str | os.PathLike):
        from celltable.adapters.parsl_runner import load_config_file

        parsl_config = load_config_file(os.fspath(parsl_config))
    entries = _manifest(source_path)
    if not _is_cloud(dest_path) and any(_is_cloud(p) for p in (source_path, *entries)):
        from celltable.adapters.safe_paths import check_download_cache

        check_download_cache(settings.cache_dir, dest_path,
                             [p for p in (source_path, *entries) if p and not _is_cloud(p)])
    clients = _cloud_clients(settings, (source_path, *entries, dest_path), opts.cloud_client,
                             opts.no_sign_request)
    locator, surveyor = _source_adapters(source_path, settings, clients, entries, progress)
    reports = _destination(dest_path, settings, clients, opts.staging_dir)
    runner = given.runner or _runner(parsl_config, settings.workers, opts.executor)
    with runner:
        # the executor decides how many tasks run at once: the threads are shared among them
        settings = settings.with_workers(runner.workers)
        common = {"destination": given.destination or reports, "runner": runner,
                  "memory_budget": settings.memory_budget, "producer": PRODUCER,
                  "version": package_version(), "surveyor": given.surveyor or surveyor,
                  "progress": progress, "peak_memory": peak_memory,
                  "around_conversion": frozen_heap, "after_chunk": chunk_released}
        # plate tasks build their own writer of the format where they run
        if opts.join_sql is None and getattr(runner, "elsewhere", False) \
                and opts.cloud_client is None:
            if given.locator is None and (entries or _is_cloud(source_path)):
                # cloud plates are listed only: each is downloaded by the worker converting it
                locator = _source_adapters(source_path, settings, clients, entries, progress,
                                           lazy=True)[0]
            yield _plate_services(settings, given.locator or locator, opts, common, fmt), reports
            return
        from celltable.adapters.chunk_store import LocalChunkStore, file_versions
        from celltable.adapters.duckdb_engine import DuckDBEngine
        from celltable.adapters.experiment import CellProfilerExperiments

        with _arrow_threads(settings):
            yield Services(
                locator=given.locator or locator,
                engine=given.engine or DuckDBEngine(
                    threads=settings.engine_threads, memory_limit=settings.memory_limit,
                    # tasks on threads share this process's memory; other executors need files
                    in_memory=in_memory, sqlite_reader=settings.sqlite_reader),
                writer=given.writer or writer(fmt.name, WriterSettings(
                    opts.compression, settings.memory_map, opts.float32)),
                output_format=fmt,
                chunk_store=given.chunk_store
                or partial(LocalChunkStore, memory_map=settings.memory_map),
                experiments=CellProfilerExperiments(),
                versions=given.versions or file_versions,
                **common,
            ), reports


class _InPlateTasks:
    """The engine and writer of a conversion whose plates are tasks: rows are read and written
    in those tasks only, so this process loads neither DuckDB nor Arrow (about 75 MB)."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"{name}: rows are read and written by the plate tasks")


def _plate_services(settings: Settings, locator: SourceLocator, opts: ConversionOptions,
                    common: dict[str, Any], fmt: OutputFormat) -> Services:
    """Services when each plate is one task elsewhere, built from a recipe where it runs."""
    from celltable.adapters.plate_worker import PlateRecipe
    from celltable.adapters.storage import file_versions

    # Each worker runs one plate task at a time with its own engine.
    recipe = PlateRecipe(
        engine_threads=settings.engine_threads, memory_limit=settings.memory_limit,
        compression=opts.compression, memory_map=settings.memory_map,
        cache_dir=settings.cache_dir, no_sign_request=opts.no_sign_request,
        arrow_threads=max(1, settings.threads // settings.workers) if settings.bounded else 0,
        output_format=fmt.name, float32=opts.float32)
    return Services(locator=locator, engine=_InPlateTasks(), writer=_InPlateTasks(),
                    versions=file_versions, worker_recipe=recipe, output_format=fmt, **common)


@contextmanager
def inspection(source_path: str = "", options: ConversionOptions | None = None, *,
               given: Adapters | None = None) -> Iterator[InspectServices]:
    """Services for detecting and inspecting a source (no task runner: nothing is staged);
    real adapters unless ``given`` (``locator``, ``engine``, ``surveyor``). Of ``options``
    only the threads, the memory limit and the cloud settings are used."""
    from celltable.adapters.duckdb_engine import DuckDBEngine

    opts, given = options or ConversionOptions(), given or Adapters()
    settings = Settings.resolve(opts.threads, opts.memory_limit,
                                local_cache_dir=opts.local_cache_dir)
    entries = _manifest(source_path)
    clients = _cloud_clients(settings, (source_path, *entries), opts.cloud_client,
                             opts.no_sign_request)
    locator, surveyor = _source_adapters(source_path, settings, clients, entries)
    with _arrow_threads(settings):
        yield InspectServices(
            locator=given.locator or locator,
            # One describe at a time, so DuckDB may use every thread.
            engine=given.engine
            or DuckDBEngine(threads=settings.threads, memory_limit=settings.memory_limit,
                            sqlite_reader=settings.sqlite_reader),
            surveyor=given.surveyor or surveyor,
        )


@contextmanager
def validation(dest_path: str = "", *, warehouse: bool = False,
               local_cache_dir: str | None = None, no_sign_request: bool = False,
               cloud_client: Any = None) -> Iterator[OutputReader]:
    """The reader of celltable's outputs, for validating them: each file through its format's
    reader; for a cloud ``dest_path`` its files downloaded into the cache first; for a
    ``warehouse``, its profiles' data files (memory-mapped as the settings say)."""
    settings = Settings.resolve(None, None, local_cache_dir=local_cache_dir)
    with _arrow_threads(settings):
        if warehouse:
            from celltable.adapters.iceberg_format import WarehouseReader

            yield WarehouseReader(settings.memory_map)
            return
        from celltable.adapters.formats import FormatReader

        local = FormatReader(settings.memory_map)
        if not _is_cloud(dest_path):
            yield local
            return
        from celltable.adapters.cloud_outputs import CloudOutputReader

        clients = _cloud_clients(settings, (dest_path,), cloud_client, no_sign_request)
        yield CloudOutputReader(clients, settings.cache_dir, local)


@contextmanager
def _arrow_threads(settings: Settings) -> Iterator[None]:
    """Arrow's thread pool sized by the settings while the run lasts, when threads were bounded
    (``--threads`` or ``CELLTABLE_THREADS``), and given back its size afterwards; left at
    Arrow's default otherwise."""
    if not settings.bounded:
        yield
        return
    import pyarrow as pa

    before = pa.cpu_count()
    pa.set_cpu_count(settings.threads)
    try:
        yield
    finally:
        pa.set_cpu_count(before)


def _manifest(source_path: str) -> tuple[str, ...]:
    """The sources a manifest file lists; empty when ``source_path`` is not a manifest."""
    from celltable.adapters.manifest import is_manifest, read_manifest

    return read_manifest(source_path) if source_path and is_manifest(source_path) else ()


def _source_adapters(source_path: str, settings: Settings, clients: Any,
                     entries: tuple[str, ...] = (), progress: Any = None,
                     lazy: bool = False) -> tuple[Any, Any]:
    """The locator for the source's scheme (or, for a manifest, for each listed source's), and
    the surveyor recognising other kinds of source (local sources only)."""
    from celltable.adapters.storage import LocalSourceLocator
    from celltable.adapters.survey import LocalSurveyor

    if entries:
        from celltable.adapters.manifest import ManifestLocator

        locators: dict[str, Any] = {}  # one per entry, so each is listed once

        def locator_for(entry: str) -> Any:
            if entry not in locators:
                locators[entry] = _source_adapters(entry, settings, clients, (), progress, lazy)[0]
            return locators[entry]

        return ManifestLocator(entries, locator_for, source_path), None
    if _is_cloud(source_path):
        from celltable.adapters.cloud import CloudSourceLocator

        return CloudSourceLocator(clients, settings.cache_dir, progress=progress, lazy=lazy), None
    return LocalSourceLocator(), LocalSurveyor()


def _destination(dest_path: str, settings: Settings, clients: Any,
                 staging_dir: str | None) -> Destination:
    """The destination for DEST's scheme: the cloud's or local disk."""
    if _is_cloud(dest_path):
        from celltable.adapters.cloud import CloudDestination

        return CloudDestination(clients, settings.cache_dir, staging_dir)
    from celltable.adapters.storage import LocalDestination

    return LocalDestination(staging_dir)


def _runner(parsl_config: Any, workers: int, executor: str) -> Any:
    """Tasks run as Parsl apps: on local threads by default, else on the executor or
    configuration asked for."""
    from celltable.adapters.parsl_runner import ParslRunner

    return ParslRunner(parsl_config, workers, executor=executor)


def output_format_of(dest_path: str, given: str | None, source_path: str = "") -> OutputFormat:
    """The output format for ``dest_path``: ``given``, else DEST's suffix's (see
    :func:`celltable.domain.formats.choose_format`).

    Raises:
        OutputFormatError: It cannot be chosen (unless DEST is inside the source, which the
            destination refuses with its own error).
    """
    from celltable.adapters.formats import FORMATS

    try:
        return choose_format(dest_path, given, FORMATS)
    except OutputFormatError:
        if not _within(dest_path, source_path):
            raise
        return PARQUET  # the destination refuses to write into the source, and says so


def _within(path: str, source_path: str) -> bool:
    """Whether the local ``path`` is ``source_path`` or inside it."""
    if not path or not source_path or _is_cloud(path) or _is_cloud(source_path):
        return False
    inner, outer = Path(path).expanduser().resolve(), Path(source_path).expanduser().resolve()
    return inner == outer or outer in inner.parents


def _is_cloud(path: str) -> bool:
    """Whether ``path`` names object storage. The cloud adapters (cloudpathlib, and boto3 when
    installed: a tenth of a second or more) are imported only then."""
    if "://" not in str(path):
        return False
    from celltable.adapters.cloud import is_cloud

    return is_cloud(path)


def _cloud_clients(settings: Settings, paths: tuple[str, ...], client: Any,
                   no_sign_request: bool) -> Any:
    """The cloud clients when a path is in the cloud, else None."""
    if not any(_is_cloud(p) for p in paths):
        return None
    from celltable.adapters.cloud import CloudClients

    return CloudClients(settings.cache_dir, client=client, no_sign_request=no_sign_request)


def warehouse_adapters(dest_path: str, catalog_uri: str | None = None,
                       catalog_options: Any = ()) -> tuple[Warehouse, ImageCropper]:
    """The Iceberg warehouse at ``dest_path`` (or in the catalog at ``catalog_uri``) and the
    image cropper.

    Raises:
        MissingExtraError: pyiceberg or tifffile is not installed.
    """
    from celltable.adapters.iceberg import IcebergWarehouse, pyiceberg_catalog
    from celltable.adapters.images import TiffCropper, tifffile_module

    pyiceberg_catalog()
    tifffile_module()
    return IcebergWarehouse(dest_path, catalog_uri, dict(catalog_options)), TiffCropper()


def crop_pixels(crop: Any) -> Any:
    """The NumPy array of an OME-Arrow crop (see ``celltable.adapters.ome_arrow.to_numpy``)."""
    from celltable.adapters.ome_arrow import to_numpy

    return to_numpy(crop)
