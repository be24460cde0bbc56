"""The output formats celltable writes, and where each one's writer and reader live.

Adding a format: one module with a writer factory (``f(settings) -> TableWriter``) and an
:class:`celltable.domain.ports.OutputReader`, and one registration line below. Modules are
imported only when their format is used (a format's library may be an optional extra), so this
registry is cheap to read and usable in a worker process to build one partition file's sink.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from celltable.domain.errors import MissingExtraError, SourceNotFoundError, SourceReadError
from celltable.domain.formats import PARQUET, OutputFormat
from celltable.domain.ports import OutputReader, TableWriter
from celltable.domain.validation import OutputScan
from celltable.domain.warehouse import ICEBERG


@dataclass(frozen=True, slots=True)
class WriterSettings:
    """What every writer may use; a format ignores what does not apply to it."""

    compression: str = "zstd"
    memory_map: bool = True
    float32: bool = False


@dataclass(frozen=True, slots=True)
class Registered:
    """A format, its writer factory and its reader class, as ``module:name``, and for a
    folder format the files that mark a folder as one of its tables."""

    format: OutputFormat
    writer: str
    reader: str
    markers: tuple[str, ...] = ()


REGISTRY: tuple[Registered, ...] = (
    Registered(PARQUET, "celltable.adapters.parquet_checks:checked_parquet", "celltable.adapters.parquet_checks:ParquetReader"),
    Registered(OutputFormat("h5ad", ".h5ad", aliases=("anndata_h5ad",), extra="anndata"), "celltable.adapters.anndata_out:h5ad_writer", "celltable.adapters.anndata_read:AnnDataReader"),
    Registered(OutputFormat("zarr", ".zarr", folder=True, aliases=("anndata_zarr",), extra="anndata"), "celltable.adapters.anndata_out:zarr_writer", "celltable.adapters.anndata_read:AnnDataReader", ("zarr.json", ".zgroup")),
    Registered(ICEBERG, "celltable.adapters.iceberg_format:profiles_writer", "celltable.adapters.iceberg_format:WarehouseReader"),
)

FORMATS: tuple[OutputFormat, ...] = tuple(r.format for r in REGISTRY)


def _load(fmt: OutputFormat, where: str) -> Any:
    module, _, name = where.partition(":")
    try:
        return getattr(importlib.import_module(module), name)
    except ImportError as e:
        if not fmt.extra:
            raise
        raise MissingExtraError(
            f"writing or reading {fmt.name} needs the optional dependencies of celltable's "
            f"[{fmt.extra}] extra ({e.name or e} is missing): "
            f'pip install "celltable[{fmt.extra}]"'
        ) from e


def _registered(name: str) -> Registered:
    return next(r for r in REGISTRY if r.format.name == name)


def writer(name: str, settings: WriterSettings | None = None) -> TableWriter:
    """The writer of the format called ``name``.

    Raises:
        MissingExtraError: The format's optional dependencies are not installed.
    """
    entry = _registered(name)
    factory: Callable[[WriterSettings], TableWriter] = _load(entry.format, entry.writer)
    return factory(settings or WriterSettings())


def reader(name: str, memory_map: bool = True) -> OutputReader:
    """The reader of the format called ``name`` (``memory_map``: read through memory maps,
    where the format's reader maps files).

    Raises:
        MissingExtraError: The format's optional dependencies are not installed.
    """
    entry = _registered(name)
    return _load(entry.format, entry.reader)(memory_map)


def format_of(path: str) -> OutputFormat:
    """The format of an output file (or folder store) by its suffix, or for a folder by the
    files marking its format; else Parquet (outputs named without a suffix)."""
    suffix = Path(path).suffix.lower()
    found = next((f for f in FORMATS if f.suffix == suffix), None)
    if found is None and Path(path).is_dir():
        found = next((r.format for r in REGISTRY
                      if any((Path(path) / m).exists() for m in r.markers)), None)
    return found or PARQUET


class FormatReader:
    """Reads outputs of every registered format (see
    :class:`celltable.domain.ports.OutputReader`), each through its format's reader."""

    def __init__(self, memory_map: bool = True) -> None:
        self.memory_map = memory_map  # CELLTABLE_ARROW_USE_MEMORY_MAPPING, for readers that map
        self._readers: dict[str, OutputReader] = {}

    def _reader(self, path: str) -> OutputReader:
        return self._reader_of(format_of(path).name)

    def _reader_of(self, name: str) -> OutputReader:
        if name not in self._readers:
            self._readers[name] = reader(name, self.memory_map)
        return self._readers[name]

    def tables(self, dest_path: str) -> tuple[str, ...]:
        path = Path(dest_path).expanduser().absolute()
        if not path.exists():
            raise SourceNotFoundError(f"{path} does not exist; give the file (or folder) that "
                                      "celltable convert wrote")
        if path.is_file() or (path.is_dir() and format_of(str(path)).folder):
            return (str(path),)
        # a --no-join folder holds a table per source table; partitioned by plate, a table per
        # plate (in a folder per table without a join)
        found = sorted(p for f in FORMATS for p in path.rglob(f"*{f.suffix}")
                       if p.is_dir() == f.folder
                       and not any(q.suffix.lower() in _FOLDER_SUFFIXES
                                   for q in p.relative_to(path).parents))
        if not found:
            raise SourceReadError(
                f"{path} is a folder without tables celltable writes "
                f"({', '.join(f.suffix for f in FORMATS)}); give the file (or folder) that "
                "celltable convert wrote")
        return tuple(str(p) for p in found)

    def scan(self, path: str, key_columns: Any, group_rows: Any = None) -> OutputScan:
        return self._reader(path).scan(path, key_columns, group_rows)

    def folder(self, dest_path: str) -> tuple[str | None, dict[str, str]] | None:
        path = Path(dest_path).expanduser().absolute()
        if not path.is_dir() or format_of(str(path)).folder:
            return None  # one table
        manifest, found = None, {}
        for table in dict.fromkeys(format_of(t).name for t in self.tables(dest_path)):
            listed = self._reader_of(table).folder(str(path))
            if listed is not None:
                manifest = listed[0]
                found.update(listed[1])
        return manifest, found


_FOLDER_SUFFIXES = {f.suffix for f in FORMATS if f.folder}
