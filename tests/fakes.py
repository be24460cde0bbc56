"""In-memory stand-ins for the ports, for fast tests of the application layer."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from celltable.domain.detect import SourceSurvey
from celltable.domain.errors import (
    DestinationError,
    ImageFileError,
    NoTablesFoundError,
    SchemaError,
    SourceNotFoundError,
    WarehouseError,
)
from celltable.domain.inspection import PlateDescription, TableDescription, orphan_checks
from celltable.domain.join import ChunkQuery
from celltable.domain.naming import OBJECT_NUMBER
from celltable.domain.paths import WrittenPath, check_paths, within
from celltable.domain.ports import StagingPaths
from celltable.domain.presets import Preset
from celltable.domain.resume import SavedChunk
from celltable.domain.schema import Column, DataType, TableSchema
from celltable.domain.sources import ChunkOutput, Plate, SourceLayout, StagedPlate, StagedTable
from celltable.domain.validation import OutputScan, file_fingerprint, manifest_json
from celltable.domain.warehouse import CropOutput, FileIndex, ImageRows, TableState

Rows = list[dict[str, Any]]


@dataclass
class FakeSource:
    """Plates as dicts of table name -> rows (each row a dict of source column -> value)."""

    plates: dict[str, dict[str, Rows]]

    def discover(self, source_path: str, preset: Preset) -> SourceLayout:
        if not self.plates:
            raise NoTablesFoundError(f"nothing in {source_path}")
        plates = tuple(
            Plate(key, preset.source_format, f"{source_path}/{key}", ())
            for key in self.plates
        )
        return SourceLayout(source_path, plates)


def _type(values: list[Any]) -> DataType:
    kinds = {type(v) for v in values if v is not None}
    if kinds == {bool}:
        return DataType.BOOL
    return DataType.INT64 if kinds <= {int} else DataType.FLOAT64 if kinds <= {int, float} \
        else DataType.STRING


def _schema(name: str, rows: Rows) -> TableSchema:
    cols = list(rows[0]) if rows else []
    return TableSchema(name, tuple(Column(c, _type([r[c] for r in rows])) for c in cols))


_CASTS = {DataType.FLOAT64: float, DataType.FLOAT32: float, DataType.INT64: int, DataType.BOOL: bool}


def _cast(value: Any, kind: DataType) -> Any:
    """``value`` as SQL's cast to ``kind`` gives it."""
    return None if value is None else _CASTS.get(kind, str)(value)


@dataclass
class FakeEngine:
    """Joins rows in Python with the semantics the DuckDB adapter must have."""

    source: FakeSource
    fail_on_chunk: int | None = None

    def stage(self, plate: Plate, preset: Preset, staging_dir: str,
              copy: bool = False, share: int = 1) -> StagedPlate:
        tables = []
        for name, rows in self.source.plates[plate.key].items():
            schema = _schema(name, rows)
            if preset.image_key not in schema.names:  # one image of every row (IN Carta)
                tables.append(StagedTable(name, schema, len(rows), ((0, len(rows)),) if rows else ()))
                continue
            by_image = Counter(r[preset.image_key] for r in rows)
            nulls = by_image.pop(None, 0)  # rows without a key travel with the first chunk
            counted = sorted(by_image.items())
            counted = [(counted[0][0] if counted else 0, nulls), *counted] if nulls else counted
            tables.append(StagedTable(name, schema, len(rows), tuple(counted), null_keys=nulls))
        return StagedPlate(plate, plate.key, tuple(tables))

    def chunk_sources(self, staged: StagedPlate, queries: Sequence[ChunkQuery]) -> Iterator[StagedPlate]:
        return iter([staged] * len(queries))

    def read_chunk(self, staged: StagedPlate, query: ChunkQuery) -> ChunkOutput:
        """As the DuckDB engine reads a chunk: a base row missing a partner is dropped and
        counted under each step whose child it has (every step listed, zeros too); values
        cast to their column's type; rows in ``order_by`` order, NULLs first."""
        if self.fail_on_chunk == query.chunk.index:
            raise RuntimeError("disk on fire")
        plate = self.source.plates[staged.plate.key]
        key = query.image_key
        first = query.chunk.lower is None  # rows without an image number go with the first chunk
        base = [r for r in plate[query.table]
                if (first if r.get(key) is None else query.chunk.contains(r[key]))]
        steps = query.join.steps if query.join else ()
        out, dropped, missing = [], 0, dict.fromkeys((s.describe() for s in steps), 0)
        for row in base:
            found = {query.table: row, "Image": next(
                (i for i in plate.get("Image", []) if i[key] == row.get(key)), {})}
            for step in steps:
                if step.child not in found:  # counted under the step that lost the child
                    continue
                partner = next((p for p in plate[step.parent] if p[key] == row[key]
                                and p[step.parent_object_number] == found[step.child][step.column]), None)
                if partner is None:
                    missing[step.describe()] += 1
                else:
                    found[step.parent] = partner
            if any(step.parent not in found for step in steps):
                dropped += 1
                continue
            out.append({c.output: _cast(c.constant if c.constant is not None else
                                        found.get(c.table, {}).get(c.source), c.type)
                        for c in query.columns})
        out.sort(key=lambda r: tuple((r.get(k) is not None, r.get(k)) for k in query.order_by))
        nulls = sum(1 for r in out if r.get(OBJECT_NUMBER, 0) is None)
        return ChunkOutput(query.chunk, out, len(out), len(base), dropped, tuple(missing.items()),
                           null_objects=nulls)

    def read_sql(self, staged: StagedPlate, sql: str, plate_key: str, views=()) -> ChunkOutput:
        raise NotImplementedError

    def release(self, staged: StagedPlate) -> None:
        pass

    def describe(self, plate: Plate, preset: Preset) -> PlateDescription:
        rows_by_table = self.source.plates[plate.key]
        key = preset.image_key
        tables = []
        for name, rows in rows_by_table.items():
            schema = _schema(name, rows)
            ident = [key] if name == "Image" else [key, preset.compartment(name).object_number]
            if key not in schema.names:  # rows told apart by their identifiers, if at all
                ident = [*preset.metadata_columns, ident[-1]] if preset.one_table_per_file \
                    and ident[-1] in schema.names else []
            ident = [c for c in ident if c in schema.names]
            seen = Counter(tuple(r.get(c) for c in ident) for r in rows
                           if ident and (key not in schema.names or r.get(key) is not None))
            tables.append(TableDescription(
                name, name, schema, len(rows),
                null_keys=sum(1 for r in rows if key in schema.names and r.get(key) is None),
                duplicate_keys=sum(n - 1 for n in seen.values())))
        schemas = {t.table: t.schema for t in tables}
        orphans = []
        for step in orphan_checks(preset, schemas):
            parents = {(r[key], r[step.parent_object_number]) for r in rows_by_table[step.parent]}
            orphans.append((step.describe(), sum(
                1 for r in rows_by_table[step.child] if (r[key], r[step.column]) not in parents)))
        return PlateDescription(plate, tuple(tables), tuple(orphans))


@dataclass
class FakeSink:
    """Rows (dicts, as the fake engine makes them) kept in ``store`` once closed."""

    path: str
    columns: Sequence[Column]
    store: dict[str, Any]
    rows: Rows = field(default_factory=list)

    def write(self, data: Rows) -> None:
        if data and (lacking := {c.name for c in self.columns} - set(data[0])):
            raise SchemaError(f"rows for {self.path} do not fit its columns (no {sorted(lacking)})")
        self.rows.extend(data)

    def close(self, metadata: Mapping[str, str]) -> int:
        self.store[self.path] = {"columns": [c.name for c in self.columns], "rows": self.rows,
                                 "metadata": dict(metadata), "schema": tuple(self.columns)}
        return len(self.rows)


@dataclass
class FakeWriter:
    files: dict[str, Any] = field(default_factory=dict)
    manifests: dict[str, str] = field(default_factory=dict)

    def create(self, path: str, columns: Sequence[Column], rows: int = 0) -> FakeSink:
        return FakeSink(path, columns, self.files)

    def columns_of(self, data: object) -> Sequence[Column]:
        return _schema("", data).columns  # type: ignore[arg-type]

    def seal(self, folder: str) -> None:
        self.sealed = folder
        self.manifests[folder] = manifest_json(self.fingerprints(folder))

    def fingerprints(self, folder: str) -> dict[str, str]:
        """Each table under ``folder`` and its fingerprint (its rows stand for its size)."""
        return {p[len(folder) + 1:]: file_fingerprint(len(f["rows"]), f["metadata"])
                for p, f in self.files.items() if p.startswith(f"{folder}/")}


@dataclass
class FakeOutputReader:
    """Re-reads what a :class:`FakeWriter` wrote (see ``OutputReader``), without checksums."""

    writer: FakeWriter

    def tables(self, dest_path: str) -> tuple[str, ...]:
        if not (found := tuple(p for p in self.writer.files if within(p, dest_path))):
            raise SourceNotFoundError(f"{dest_path} does not exist")
        return found

    def scan(self, path: str, key_columns: Sequence[str] | None,
             group_rows: Sequence[int] | None = None) -> OutputScan:
        f = self.writer.files[path]
        return OutputScan(path, len(f["rows"]), f["schema"], tuple(sorted(f["metadata"].items())))

    def folder(self, dest_path: str) -> tuple[str | None, dict[str, str]] | None:
        found = self.writer.fingerprints(dest_path)
        if not found and dest_path not in self.writer.manifests:
            return None  # one table, not a folder of them
        return self.writer.manifests.get(dest_path), found


@dataclass
class FakeDestination:
    """DEST in memory: ``existing`` paths, ``store`` their content (a folder as a dict); ``staged``:
    the run's output at its staging path; ``resumes``: resume folders' files, kept until published."""

    existing: set[str] = field(default_factory=set)
    published: list[str] = field(default_factory=list)
    discarded: int = 0
    texts: dict[str, str] = field(default_factory=dict)
    store: dict[str, Any] = field(default_factory=dict)
    staged: dict[str, Any] = field(default_factory=dict)
    resumes: dict[str, dict[str, Any]] = field(default_factory=dict)
    _dest: str = ""
    _overwrite: bool = False

    def prepare(self, dest_path: str, *, folder: bool, overwrite: bool, resume: bool = False,
                sources: Sequence[str] = (), guarded: Sequence[tuple[str, str]] = (),
                shared: bool = False) -> StagingPaths:
        check_paths(list(sources), WrittenPath("destination", dest_path),
                    [WrittenPath(option, path) for option, path in guarded])
        if dest_path in self.existing:
            if not overwrite:
                raise DestinationError(f"{dest_path} exists")
            if dest_path in self.store and isinstance(self.store[dest_path], dict) != folder:
                raise DestinationError(f"{dest_path} is not a {'folder' if folder else 'file'}")
        self._dest, self.sources, self._overwrite = dest_path, tuple(sources), overwrite
        self.staged = {"staged": {}} if folder else {}
        if resume:
            self.resumes.setdefault(f"resume:{dest_path}", {})
        return StagingPaths("staged", "scratch", f"resume:{dest_path}" if resume else None)

    def publish(self) -> str:
        if self._dest in self.existing and not self._overwrite:
            raise DestinationError(f"{self._dest} appeared meanwhile")
        self.existing.add(self._dest)
        self.store[self._dest] = self.staged.pop("staged", None)
        self.resumes.pop(f"resume:{self._dest}", None)
        self.published.append(self._dest)
        return self._dest

    def discard(self) -> None:
        self.staged = {}
        self.discarded += 1

    def write_text(self, path: str, text: str) -> str:
        self.texts[path] = text
        return path


class SyncRunner:
    """Runs each task at once, in the caller's thread."""

    workers = 1

    def __enter__(self) -> SyncRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def submit(self, fn: Callable[..., Any], /, *args: Any) -> Future[Any]:
        future: Future[Any] = Future()
        try:
            future.set_result(fn(*args))
        except Exception as e:
            future.set_exception(e)
        return future


@dataclass
class FakeSurveyor:
    """A survey fixed in advance."""

    survey_: SourceSurvey

    def survey(self, source_path: str) -> SourceSurvey:
        return self.survey_


@dataclass
class FakeChunkStore:
    """Saved chunks in a dict (shared by the stores of every run, like a folder on disk)."""

    saves: dict[str, tuple[SavedChunk, Any]] = field(default_factory=dict)
    loaded: list[str] = field(default_factory=list)
    source_version: str = "v1"

    def open(self, folder: str) -> FakeChunkStore:
        return self

    def versions(self, paths: Sequence[str]) -> dict[str, str]:
        return {p: self.source_version for p in paths}

    def saved(self, key: str) -> SavedChunk | None:
        entry = self.saves.get(key)
        return entry[0] if entry else None

    def save(self, key: str, output: ChunkOutput) -> None:
        self.saves[key] = (SavedChunk(key, output.rows_out, output.rows_in, output.dropped,
                                      output.missing, "sum", output.null_objects), output.data)

    def load(self, saved: SavedChunk) -> Any:
        self.loaded.append(saved.key)
        return self.saves[saved.key][1]


@dataclass
class FakeWarehouse:
    """A warehouse in memory: tables' plates and the commits made (see ``Warehouse``)."""

    holds: dict[tuple[str, str], tuple[str, ...]] = field(default_factory=dict)
    commits: list[list[Any]] = field(default_factory=list)
    prepared: list[bool] = field(default_factory=list)
    discarded: list[bool] = field(default_factory=list)
    fail_commit: bool = False

    def prepare(self, *, append: bool) -> str:
        self.prepared.append(append)
        return "wh-staging"

    def plates(self, namespace: str, table: str) -> tuple[str, ...]:
        return self.holds.get((namespace, table), ())

    def commit(self, tables: Sequence[Any], properties: Mapping[str, str]) -> tuple[Any, ...]:
        if self.fail_commit:
            raise WarehouseError("commit refused")
        self.commits.append(list(tables))
        return tuple(TableState(t.namespace, t.table, len(t.files), 1, 1, 0)
                     for t in tables if t.files)

    def discard(self, failed: bool = False) -> None:
        self.discarded.append(failed)


@dataclass
class FakeCropper:
    """Crops nothing real: the objects of the fake writer's profiles, one crop per channel
    file (see ``ImageCropper``); a file named in ``broken`` cannot be read."""

    writer: FakeWriter
    files: tuple[str, ...] = ()
    broken: tuple[str, ...] = ()
    batches: list[Any] = field(default_factory=list)

    def columns(self, profiles: str) -> tuple[str, ...]:
        return tuple(self.writer.files["staged"]["columns"])

    def index(self, folder: str) -> Any:
        if folder == "missing":
            raise ImageFileError(f"image folder {folder} does not exist")
        return FileIndex(folder, {f: (f,) for f in self.files})

    def image_rows(self, profiles: str, channels: Sequence[Any],
                   bbox: Sequence[str]) -> Iterator[Any]:
        rows = self.writer.files["staged"]["rows"]
        for key in dict.fromkeys((r["Metadata_TableNumber"], r["Metadata_ImageNumber"])
                                 for r in rows):
            mine = [r for r in rows
                    if (r["Metadata_TableNumber"], r["Metadata_ImageNumber"]) == key]
            yield ImageRows(*key, tuple((c.name, mine[0][c.file_column], None) for c in channels),
                            tuple(r["Metadata_ObjectNumber"] for r in mine),
                            tuple(tuple(r[b] for b in bbox) for r in mine))

    def crop(self, sets: Sequence[Any], path: str, skip_bad_files: bool) -> Any:
        self.batches.append(sets)
        for s in sets:
            for _, file in s.files:
                if file.rsplit("/", 1)[-1] in self.broken:
                    raise ImageFileError(f"{file} is not a readable TIFF")
        return CropOutput(path, sum(len(s.objects) * len(s.files) for s in sets),
                          channels=tuple(sorted({c for s in sets for c, _ in s.files})))
