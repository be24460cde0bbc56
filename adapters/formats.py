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
    """A format, its writer factory and its reader class, as ``module:name``."""

    format: OutputFormat
    writer: str
    reader: str


REGISTRY: tuple[Registered, ...] = (
    Registered(PARQUET, "celltable.adapters.parquet_checks:checked_parquet", "celltable.adapters.parquet_checks:ParquetReader"),
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


def format_of(path: str) -> OutputFormat:
    """The format of an output file (or folder store) by its suffix; Parquet when it has none
    celltable writes (outputs named without a suffix)."""
    suffix = Path(path).suffix.lower()
    return next((f for f in FORMATS if f.suffix == suffix), PARQUET)


class FormatReader:
    """Reads outputs of every registered format (see
    :class:`celltable.domain.ports.OutputReader`), each through its format's reader."""

    def __init__(self) -> None:
        self._readers: dict[str, OutputReader] = {}

    def _reader(self, path: str) -> OutputReader:
        fmt = format_of(path)
        if fmt.name not in self._readers:
            self._readers[fmt.name] = _load(fmt, _registered(fmt.name).reader)()
        return self._readers[fmt.name]

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
            return None
        return self._reader(str(path)).folder(str(path))


_FOLDER_SUFFIXES = {f.suffix for f in FORMATS if f.folder}
