"""The composition root: the one module that builds adapters and hands them to use cases."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from celltable.application.convert import Services
from celltable.application.inspect import InspectServices
from celltable.domain.errors import ConfigurationError, OutputFormatError
from celltable.domain.formats import PARQUET, OutputFormat, choose_format
from celltable.domain.ports import OutputReader

PRODUCER = "celltable"


def package_version() -> str:
    try:
        return version("celltable")
    except PackageNotFoundError:  # running from a source tree
        return "0.0.0"


@dataclass(frozen=True, slots=True)
class Settings:
    """Process-wide settings, read once from arguments, then ``CELLTABLE_*`` variables."""

    threads: int
    workers: int
    engine_threads: int
    memory_budget: int
    memory_limit: int
    memory_map: bool
    cache_dir: str = ""
    sqlite_reader: str = "auto"
    """``CELLTABLE_SQLITE_READER``: ``auto`` (DuckDB's SQLite extension when installed for this
    DuckDB, else ADBC), ``arrow`` or ``extension``."""
    bounded: bool = False
    """Threads were bounded (``threads`` or ``CELLTABLE_THREADS``): Arrow's pool is sized too."""

    @classmethod
    def resolve(cls, threads: int | None, memory_limit: str | None,
                env: dict[str, str] | None = None, *, workers: int | None = None,
                local_cache_dir: str | None = None) -> Settings:
        env = dict(os.environ) if env is None else env
        bound = threads or _int_setting(env, "CELLTABLE_THREADS")
        total = bound or os.cpu_count() or 1
        # Each task's DuckDB gets two threads where there is room: joins of wide tables use
        # them well, and fewer concurrent tasks keep fewer chunks in memory.
        workers = workers or max(1, total // 2)
        engine_threads = max(1, total // workers)
        budget = _physical_memory() // 2
        given = memory_limit or env.get("CELLTABLE_MEMORY_LIMIT")
        # Bounded by default, so memory stays flat however large the plate: past the limit
        # DuckDB spills to the staging folder.
        limit = parse_size(given) if given else min(budget // workers, DEFAULT_MEMORY_LIMIT)
        memory_map = env.get("CELLTABLE_ARROW_USE_MEMORY_MAPPING", "1").strip().lower() not in (
            "0", "false", "no", "off")
        return cls(total, workers, engine_threads, budget, limit, memory_map,
                   _cache_dir(local_cache_dir, env), _sqlite_reader(env),
                   bounded=bool(bound))


def _int_setting(env: dict[str, str], name: str) -> int:
    """A positive whole number from the environment (0: unset).

    Raises:
        ConfigurationError: It is set to something else.
    """
    text = env.get(name, "").strip()
    if not text:
        return 0
    if not text.isdigit() or int(text) < 1:
        raise ConfigurationError(f"{name}={text!r} is not a positive whole number of threads")
    return int(text)


DEFAULT_MEMORY_LIMIT = 2 * 2**30
_UNITS = {"": 1, "B": 1, "KB": 2**10, "KIB": 2**10, "MB": 2**20, "MIB": 2**20, "GB": 2**30,
          "GIB": 2**30, "TB": 2**40, "TIB": 2**40}


def parse_size(text: str) -> int:
    """Bytes in a size such as ``512MB`` or ``2 GB`` (units of 1024).

    Raises:
        ConfigurationError: The text is not a size.
    """
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", text)
    if not match or match.group(2).upper() not in _UNITS:
        raise ConfigurationError(f"memory limit {text!r} is not a size like 512MB or 2GB")
    return int(float(match.group(1)) * _UNITS[match.group(2).upper()])


def _sqlite_reader(env: dict[str, str]) -> str:
    from celltable.adapters.sqlite_reader import READERS

    reader = env.get("CELLTABLE_SQLITE_READER", "").strip().lower() or "auto"
    if reader not in READERS:
        raise ConfigurationError(
            f"CELLTABLE_SQLITE_READER={reader!r} is not one of {', '.join(READERS)}")
    return reader


def _cache_dir(given: str | None, env: dict[str, str]) -> str:
    """Where cloud files are cached: on disk under the user's cache folder, never a RAM-backed
    temporary folder (a plate's SQLite can be tens of GB)."""
    if given or env.get("CELLTABLE_LOCAL_CACHE_DIR"):
        return str(Path(given or env["CELLTABLE_LOCAL_CACHE_DIR"]).expanduser().absolute())
    base = env.get("XDG_CACHE_HOME") or str(Path("~/.cache").expanduser())
    return str(Path(base) / "celltable")


def _physical_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not POSIX
        return 8 * 2**30


@contextmanager
def bootstrap(
    *,
    threads: int | None = None,
    memory_limit: str | None = None,
    compression: str = "zstd",
    staging_dir: str | None = None,
    parsl_config: Any = None,
    executor: str = "threads",
    workers: int | None = None,
    source_path: str = "",
    dest_path: str = "",
    local_cache_dir: str | None = None,
    no_sign_request: bool = False,
    cloud_client: Any = None,
    progress: Any = None,
    plate_tasks: bool = True,
    output_format: str | None = None,
    float32: bool = False,
    **fakes: Any,
) -> Iterator[Services]:
    """Services for one conversion: real adapters unless fakes are passed by keyword
    (``locator``, ``engine``, ``writer``, ``destination``, ``runner``, ``chunk_store``).

    The locator and the destination are chosen by the scheme of ``source_path`` and
    ``dest_path`` (``s3://``, ``gs://``, ``az://``: cloud; anything else: local).
    ``parsl_config`` is a ``parsl.Config`` or the path of a Python file defining ``config``; when
    None, ``workers`` tasks run on ``executor`` (``"threads"`` or ``"htex"``). When that runs
    tasks in other processes, each plate is one task built from a recipe (``worker_recipe``),
    unless ``plate_tasks`` is false (a user's join SQL: chunks return to this process).
    ``output_format`` names the format (or an alias); None infers it from ``dest_path``'s
    suffix (see :func:`celltable.domain.formats.choose_format`)."""
    from celltable.adapters.formats import WriterSettings, writer
    from celltable.adapters.storage import LocalDestination

    fmt = output_format_of(dest_path, output_format, source_path)

    settings = Settings.resolve(threads, memory_limit, workers=workers,
                                local_cache_dir=local_cache_dir)
    if isinstance(parsl_config, str | os.PathLike):
        from celltable.adapters.parsl_runner import load_config_file

        parsl_config = load_config_file(os.fspath(parsl_config))
    entries = _manifest(source_path)
    clients = _cloud_clients(settings, (source_path, *entries, dest_path), cloud_client,
                             no_sign_request)
    locator, surveyor = _source_adapters(source_path, settings, clients, entries, progress)
    if fakes.get("destination"):
        destination = fakes["destination"]
    elif _is_cloud(dest_path):
        from celltable.adapters.cloud import CloudDestination

        destination = CloudDestination(clients, settings.cache_dir, staging_dir)
    else:
        destination = LocalDestination(staging_dir)
    runner = fakes.get("runner") or _runner(parsl_config, settings.workers, executor)
    with runner:
        # plate tasks build their own Parquet writer where they run; other formats are written
        # here, from the chunks the tasks return
        if plate_tasks and getattr(runner, "elsewhere", False) and cloud_client is None \
                and fmt.name == PARQUET.name:
            yield _plate_services(settings, locator, surveyor, destination, runner, compression,
                                  source_path, clients, entries, progress, no_sign_request,
                                  arrow_threads=max(1, settings.threads // settings.workers)
                                  if settings.bounded else 0)
            return
        from celltable.adapters.chunk_store import LocalChunkStore, file_versions
        from celltable.adapters.duckdb_engine import DuckDBEngine
        from celltable.adapters.experiment import CellProfilerExperiments

        _bound_arrow(settings)
        yield Services(
            locator=locator,
            engine=fakes.get("engine")
            or DuckDBEngine(
                threads=settings.engine_threads,
                memory_limit=settings.memory_limit,
                # tasks on threads share this process's memory; other executors need files
                in_memory=parsl_config is None and executor == "threads",
                sqlite_reader=settings.sqlite_reader,
            ),
            writer=fakes.get("writer")
            or writer(fmt.name, WriterSettings(compression, settings.memory_map, float32)),
            output_format=fmt,
            destination=destination,
            runner=runner,
            memory_budget=settings.memory_budget,
            producer=PRODUCER,
            version=package_version(),
            surveyor=fakes.get("surveyor") or surveyor,
            chunk_store=fakes.get("chunk_store")
            or partial(LocalChunkStore, memory_map=settings.memory_map),
            experiments=CellProfilerExperiments(),
            versions=fakes.get("versions") or file_versions,
        )


class _InPlateTasks:
    """The engine and writer of a conversion whose plates are tasks: rows are read and written
    in those tasks only, so this process loads neither DuckDB nor Arrow (about 75 MB)."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"{name}: rows are read and written by the plate tasks")


def _plate_services(settings: Settings, locator: Any, surveyor: Any, destination: Any,
                    runner: Any, compression: str, source_path: str, clients: Any,
                    entries: tuple[str, ...], progress: Any, no_sign_request: bool,
                    arrow_threads: int) -> Services:
    """Services when each plate is one task elsewhere, built from a recipe where it runs."""
    from celltable.adapters.plate_worker import PlateRecipe
    from celltable.adapters.storage import file_versions

    # Each worker runs one plate task at a time with its own engine.
    recipe = PlateRecipe(
        engine_threads=settings.engine_threads, memory_limit=settings.memory_limit,
        compression=compression, memory_map=settings.memory_map,
        cache_dir=settings.cache_dir, no_sign_request=no_sign_request,
        arrow_threads=arrow_threads)
    # Cloud plates are listed only: each is downloaded by the worker converting it.
    if entries or _is_cloud(source_path):
        locator = _source_adapters(source_path, settings, clients, entries, progress, lazy=True)[0]
    return Services(locator=locator, engine=_InPlateTasks(), writer=_InPlateTasks(),
                    destination=destination, runner=runner, memory_budget=settings.memory_budget,
                    producer=PRODUCER, version=package_version(), surveyor=surveyor,
                    versions=file_versions, worker_recipe=recipe)


def inspect_services(
    source_path: str = "",
    *,
    threads: int | None = None,
    memory_limit: str | None = None,
    local_cache_dir: str | None = None,
    no_sign_request: bool = False,
    cloud_client: Any = None,
    **fakes: Any,
) -> InspectServices:
    """Services for inspecting a source (no task runner: nothing is staged); real adapters
    unless fakes are passed by keyword (``locator``, ``engine``, ``surveyor``)."""
    from celltable.adapters.duckdb_engine import DuckDBEngine

    settings = Settings.resolve(threads, memory_limit, local_cache_dir=local_cache_dir)
    _bound_arrow(settings)
    entries = _manifest(source_path)
    clients = _cloud_clients(settings, (source_path, *entries), cloud_client, no_sign_request)
    locator, surveyor = _source_adapters(source_path, settings, clients, entries)
    return InspectServices(
        locator=fakes.get("locator") or locator,
        # One describe at a time, so DuckDB may use every thread.
        engine=fakes.get("engine")
        or DuckDBEngine(threads=settings.threads, memory_limit=settings.memory_limit,
                        sqlite_reader=settings.sqlite_reader),
        surveyor=fakes.get("surveyor") or surveyor,
    )


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

        def locator_for(entry: str) -> Any:
            return _source_adapters(entry, settings, clients, (), progress, lazy)[0]

        return ManifestLocator(entries, locator_for, source_path), None
    if _is_cloud(source_path):
        from celltable.adapters.cloud import CloudSourceLocator

        return CloudSourceLocator(clients, settings.cache_dir, progress=progress, lazy=lazy), None
    return LocalSourceLocator(), LocalSurveyor()


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


def output_reader(dest_path: str = "", *, local_cache_dir: str | None = None,
                  no_sign_request: bool = False, cloud_client: Any = None) -> OutputReader:
    """The reader of celltable's outputs, for validating them: each file through its format's
    reader; for a cloud ``dest_path`` its files downloaded into the cache first."""
    from celltable.adapters.formats import FormatReader

    settings = Settings.resolve(None, None, local_cache_dir=local_cache_dir)
    _bound_arrow(settings)
    local = FormatReader(settings.memory_map)
    if not _is_cloud(dest_path):
        return local
    from celltable.adapters.cloud_outputs import CloudOutputReader

    clients = _cloud_clients(settings, (dest_path,), cloud_client, no_sign_request)
    return CloudOutputReader(clients, settings.cache_dir, local)


def _bound_arrow(settings: Settings) -> None:
    """Arrow's thread pool sized by the settings when threads were bounded (``--threads`` or
    ``CELLTABLE_THREADS``); left at Arrow's default otherwise."""
    if settings.bounded:
        import pyarrow as pa

        pa.set_cpu_count(settings.threads)


def warehouse_adapters(dest_path: str, catalog_uri: str | None = None,
                       catalog_options: Any = ()) -> tuple[Any, Any]:
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


def warehouse_reader() -> OutputReader:
    """The reader of a warehouse's profiles, for validating them (memory-mapped as the
    settings say)."""
    from celltable.adapters.iceberg_format import WarehouseReader

    settings = Settings.resolve(None, None)
    _bound_arrow(settings)
    return WarehouseReader(settings.memory_map)


def local_destination(staging_dir: str | None = None) -> Any:
    """A destination on local disk: a warehouse's profiles are staged locally whatever DEST
    is, then committed into the warehouse."""
    from celltable.adapters.storage import LocalDestination

    return LocalDestination(staging_dir)
