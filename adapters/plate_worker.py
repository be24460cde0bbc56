"""What a plate task builds where it runs: its own DuckDB engine, output writer (of the run's
format, from the output-format registry) and cloud clients, from a picklable recipe
(:class:`PlateRecipe`) the composition root fills in.

Implements :class:`celltable.domain.ports.PlateWorker` and
:class:`celltable.domain.ports.WorkerRecipe`.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from celltable.adapters.storage import file_versions
from celltable.domain.errors import DestinationError
from celltable.domain.ports import QueryEngine, TableSink
from celltable.domain.presets import Preset
from celltable.domain.schema import Column
from celltable.domain.sources import Plate, StagedPlate


def _is_cloud(path: str) -> bool:
    return "://" in path and path.split("://", 1)[0].lower() in ("s3", "gs", "az")


@dataclass(frozen=True, slots=True)
class PlateRecipe:
    """Settings only, so it pickles: each task builds its adapters from it where it runs.

    Cloud clients are built from the SDK's environment of the worker (``AWS_*`` ...): a client
    object built in the main process is not shipped."""

    engine_threads: int = 1
    memory_limit: int | None = None
    compression: str = "zstd"
    memory_map: bool = True
    cache_dir: str = ""
    no_sign_request: bool = False
    arrow_threads: int = 0
    """Arrow's threads in the worker (0: ``engine_threads``, the worker's share of the cores)."""
    output_format: str = "parquet"
    """The registered output format each plate's files are written in (its writer is built
    from :mod:`celltable.adapters.formats` where the task runs)."""
    float32: bool = False

    def build(self) -> LocalPlateWorker:
        return LocalPlateWorker(self)


@dataclass(slots=True)
class LocalPlateWorker:
    """A worker's adapters: its files are local (or a shared filesystem), its cloud plates
    downloaded into its own cache, its cloud outputs uploaded as each file is finished. DuckDB
    and Arrow are loaded on first use: the main process uses it for small files only."""

    recipe: PlateRecipe
    _engine: Any = field(default=None)
    _writer: Any = field(default=None)
    _clients: Any = field(default=None)

    @property
    def engine(self) -> QueryEngine:
        if self._engine is None:
            import pyarrow as pa

            from celltable.adapters.duckdb_engine import DuckDBEngine

            # A worker process is one of the node's workers: its share of the cores bounds
            # DuckDB, Arrow and the reading of its tables (one thread: read one after the other,
            # and no chunk read ahead), so --threads is the run's CPU whatever the executor.
            pa.set_cpu_count(self.recipe.arrow_threads or self.recipe.engine_threads)
            self._engine = DuckDBEngine(threads=self.recipe.engine_threads,
                                        memory_limit=self.recipe.memory_limit)
        return self._engine

    def _writer_here(self) -> Any:
        if self._writer is None:
            from celltable.adapters.formats import WriterSettings, writer

            self._writer = writer(self.recipe.output_format, WriterSettings(
                self.recipe.compression, self.recipe.memory_map, self.recipe.float32))
        return self._writer

    @property
    def read_ahead(self) -> bool:
        return self.recipe.engine_threads > 1

    def _cloud(self) -> Any:
        if self._clients is None:
            from celltable.adapters.cloud_clients import CloudClients

            self._clients = CloudClients(self.recipe.cache_dir,
                                         no_sign_request=self.recipe.no_sign_request)
        return self._clients

    def plates_of(self, plate: Plate, preset: Preset) -> tuple[Plate, ...]:
        if not _is_cloud(plate.path):
            return (plate,)
        from celltable.adapters.cloud_plates import fetch_plate

        return fetch_plate(self._cloud(), self.recipe.cache_dir, plate, preset)

    def versions(self, paths: Sequence[str]) -> dict[str, str]:
        return file_versions(paths)

    def usable(self, staged: StagedPlate) -> bool:
        files = {staged.plate.path, *(t.path for t in staged.plate.tables)}
        if not all(Path(f).exists() for f in files):
            return False
        return staged.in_place or staged.handle.exists()

    def experiment(self, plate: Plate) -> tuple[tuple[str, str], ...]:
        from celltable.adapters.experiment import CellProfilerExperiments

        return CellProfilerExperiments().read(plate)

    def check_writer(self) -> None:
        self._writer_here()

    def open_sink(self, path: str, columns: Sequence[Column], rows: int = 0) -> TableSink:
        if not _is_cloud(path):
            return self._writer_here().create(path, columns, rows)
        local = (Path(self.recipe.cache_dir) / "uploads" / "plates" /
                 f"{uuid.uuid4().hex[:12]}-{path.rsplit('/', 1)[-1]}")
        return _UploadedSink(self._writer_here().create(str(local), columns, rows), local, path,
                             self._cloud())

    def finish(self, sink: TableSink, path: str,
               metadata: Mapping[str, str]) -> tuple[int, int, Mapping[str, str]]:
        rows = sink.close(metadata)
        size = sink.size if isinstance(sink, _UploadedSink) else _bytes(Path(path))
        return rows, size, _records(sink)

    def read_text(self, path: str) -> str | None:
        try:
            return Path(path).read_text(encoding="utf-8")
        except OSError:
            return None

    def write_text(self, path: str, text: str) -> None:
        if _is_cloud(path):
            from celltable.adapters.cloud_clients import cloud_errors

            with cloud_errors(path):
                self._cloud().path(path).write_text(text)  # one object write
            return
        tmp = Path(path).with_name(f".{Path(path).name}.{uuid.uuid4().hex[:8]}.tmp")
        tmp.parent.mkdir(parents=True, exist_ok=True)
        with tmp.open("w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(path)  # atomic: a record is there whole or not at all

    def size(self, path: str) -> int | None:
        try:
            return _bytes(Path(path)) if Path(path).exists() else None
        except OSError:
            return None

    def move(self, source: str, target: str) -> None:
        try:
            Path(target).parent.mkdir(parents=True, exist_ok=True)
            shutil.move(source, target)
        except OSError as e:
            raise DestinationError(f"cannot move {source} into the output: {e}") from e


def _bytes(path: Path) -> int:
    """A file's bytes; a folder store's (Zarr), its files' together."""
    if path.is_dir():
        return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    return path.stat().st_size


def _records(sink: object) -> dict[str, str]:
    """The records (checksum, column digests) the format's sink made of what it wrote, found
    through the sinks wrapping it (an upload, the warehouse's object id)."""
    while sink is not None:
        record = getattr(sink, "record", None)
        if record:
            return dict(record)
        sink = getattr(sink, "inner", None)
    return {}


class _UploadedSink:
    """A file (or folder store) written locally, then uploaded to its object-store key when
    finished (the key is under the destination's staging prefix: nothing is visible at DEST
    before publishing)."""

    def __init__(self, inner: TableSink, local: Path, uri: str, clients: Any) -> None:
        self.inner, self._local, self._uri, self._clients = inner, local, uri, clients
        self.size = 0

    def write(self, data: object) -> None:
        self.inner.write(data)

    def close(self, metadata: Mapping[str, str]) -> int:
        from celltable.adapters.cloud_clients import cloud_errors

        try:
            rows = self.inner.close(metadata)
            self.size = _bytes(self._local)
            remote = self._clients.path(self._uri)
            with cloud_errors(self._uri):
                if self._local.is_dir():  # a folder store: its files, several at once
                    uploaded = _upload_store(self._local, remote)
                else:
                    remote.upload_from(self._local, force_overwrite_to_cloud=True)
                    uploaded = remote.stat().st_size
                if uploaded != self.size:
                    raise DestinationError(f"{self._uri} was not uploaded whole; run again")
        finally:
            if self._local.is_dir():
                shutil.rmtree(self._local, ignore_errors=True)
            self._local.unlink(missing_ok=True)
        return rows


def _upload_store(local: Path, remote: Any) -> int:
    """Upload a folder store's files; its bytes if every file is then listed under ``remote``
    (one listing, not a request per file), else -1."""
    from celltable.adapters.cloud_plates import at_once, objects

    files = {f.relative_to(local).as_posix(): f for f in local.rglob("*") if f.is_file()}
    at_once(lambda name: (remote / name).upload_from(files[name], force_overwrite_to_cloud=True),
            sorted(files))
    listed = {f.relative_to(remote).as_posix() for f in objects(remote)}
    return _bytes(local) if listed >= set(files) else -1
