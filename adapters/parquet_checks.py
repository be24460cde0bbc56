"""Checksums of output tables: computed from the rows as they are written, recomputed from the
rows as they are read back (``celltable validate``).

A checksum holds every column's null count and a SHA-256 of the key columns
(``Metadata_TableNumber``, ``Metadata_ImageNumber``, ``Metadata_ObjectNumber``) in row order. The
digest hashes a canonical form of the values (integers as little-endian int64, text as lengths
and UTF-8 bytes), so it depends on the values alone, not on how Arrow chunked or laid them out:
both sides use :class:`TableDigest`.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from celltable.adapters.arrow_types import arrow_schema, domain_columns, scalar
from celltable.adapters.column_digest import ColumnDigester
from celltable.adapters.parquet import ParquetWriter
from celltable.domain.errors import DestinationError, SourceNotFoundError, SourceReadError
from celltable.domain.ports import TableSink, TableWriter
from celltable.domain.schema import Column
from celltable.domain.validation import (
    CHECKSUM_KEY,
    COLUMNS_KEY,
    KEY_COLUMNS,
    MANIFEST_NAME,
    Checksum,
    OutputScan,
    file_fingerprint,
    manifest_json,
)

_NULL_INT = scalar(-(2**63), pa.int64())
_NO_LENGTH = scalar(-1, pa.int64())
_EMPTY = scalar("", pa.large_string())
BATCH_BYTES = 64 * 2**20  # values decoded at once when reading back


def _hash_int64(arr: pa.Array, into: Any) -> None:
    """Feed the values of an int64 array without nulls (little-endian, as Arrow stores them on
    every platform celltable runs on) to a hash, wherever the array starts in its buffer."""
    data = arr.buffers()[1]
    if data is not None and len(arr):
        into.update(data.slice(arr.offset * 8, len(arr) * 8))


class _ColumnDigest:
    def __init__(self, name: str, type_: pa.DataType) -> None:
        self.name, self.type = name, type_
        self.integer = pa.types.is_integer(type_)
        self.values = hashlib.sha256()
        self.lengths = hashlib.sha256()

    def update(self, column: pa.ChunkedArray | pa.Array) -> None:
        chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
        for arr in chunks:
            if pa.types.is_dictionary(arr.type):
                arr = arr.dictionary_decode()
            if arr.type != self.type:
                arr = arr.cast(self.type)
            if self.integer:
                self._integers(arr)
            else:
                self._text(arr)

    def _integers(self, arr: pa.Array) -> None:
        _hash_int64(pc.fill_null(arr.cast(pa.int64()), _NULL_INT), self.values)

    def _text(self, arr: pa.Array) -> None:
        arr = arr.cast(pa.large_string())
        _hash_int64(pc.fill_null(pc.binary_length(arr), _NO_LENGTH).cast(pa.int64()), self.lengths)
        arr = pc.fill_null(arr, _EMPTY)
        if not len(arr):
            return
        _, offsets, data = arr.buffers()
        (start,) = struct.unpack_from("<q", offsets, arr.offset * 8)
        (end,) = struct.unpack_from("<q", offsets, (arr.offset + len(arr)) * 8)
        if end > start:
            self.values.update(data.slice(start, end - start))

    def digest(self) -> bytes:
        kind = b"int" if self.integer else b"text"
        return hashlib.sha256(self.name.encode() + b"\0" + kind + b"\0" + self.values.digest()
                              + self.lengths.digest()).digest()


class TableDigest:
    """Null counts of every column and the digest of the key columns, fed table by table."""

    def __init__(self, schema: pa.Schema, key_columns: Sequence[str]) -> None:
        self.schema = schema
        self.keys = [_ColumnDigest(n, schema.field(n).type) for n in key_columns]
        self.nulls = dict.fromkeys(schema.names, 0)
        self.rows = 0

    def update(self, data: pa.Table | pa.RecordBatch) -> None:
        self.rows += data.num_rows
        for name, column in zip(data.column_names, data.columns, strict=True):
            if name in self.nulls:
                self.nulls[name] += column.null_count
        for key in self.keys:
            key.update(data.column(key.name))

    def checksum(self) -> Checksum:
        total = hashlib.sha256()
        for key in self.keys:
            total.update(key.digest())
        return Checksum(self.rows, tuple(k.name for k in self.keys), total.hexdigest(),
                        tuple(self.nulls.items()))


def key_columns_of(schema: pa.Schema) -> tuple[str, ...]:
    """The key columns a table has, in the order they are digested."""
    return tuple(n for n in KEY_COLUMNS if n in schema.names)


class ChecksummedSink:
    """A :class:`celltable.domain.ports.TableSink` of Arrow tables that records the checksum of
    what it wrote under ``celltable.checksum``, and the digests of every column per row group
    under ``celltable.columns`` (row groups as the inner sink reports them through
    ``on_row_group``; the whole file is one group for a sink that does not)."""

    def __init__(self, inner: TableSink, schema: pa.Schema) -> None:
        self._inner = inner
        self._schema = schema
        self._digest = TableDigest(schema, key_columns_of(schema))
        self._columns = ColumnDigester(schema)
        if hasattr(inner, "on_row_group"):
            inner.on_row_group = self._columns.end_group
        self.checksum = ""
        """The checksum recorded (JSON), once closed."""

    def write(self, data: object) -> None:
        assert isinstance(data, pa.Table), type(data)
        if data.schema != self._schema:  # as the inner sink will write it
            try:
                data = data.select(self._schema.names).cast(self._schema)
            except (KeyError, pa.ArrowInvalid, pa.ArrowNotImplementedError):
                self._inner.write(data)  # which names the trouble
                raise
        self._digest.update(data)
        self._columns.update(data)  # before writing: the write may end a row group
        self._inner.write(data)

    def close(self, metadata: Mapping[str, str]) -> int:
        columns = self._columns.digests()  # the rows still pending are the last row group
        self.record = {CHECKSUM_KEY: self._digest.checksum().to_json(),
                       COLUMNS_KEY: columns.to_json()}
        self.checksum = self.record[CHECKSUM_KEY]
        return self._inner.close({**metadata, **self.record})


class ChecksummedWriter:
    """Wraps an Arrow-based :class:`celltable.domain.ports.TableWriter` so every file it writes
    carries its checksum."""

    def __init__(self, inner: TableWriter) -> None:
        self._inner = inner

    def create(self, path: str, columns: Sequence[Column], rows: int = 0) -> ChecksummedSink:
        return ChecksummedSink(self._inner.create(path, columns, rows), arrow_schema(columns))

    def columns_of(self, data: object) -> Sequence[Column]:
        return self._inner.columns_of(data)

    def seal(self, folder: str) -> None:
        write_manifest(Path(folder), folder_fingerprints(Path(folder)))


def write_manifest(folder: Path, files: Mapping[str, str]) -> None:
    """Writes the manifest of an output folder's files (name -> fingerprint) at publish."""
    try:
        (folder / MANIFEST_NAME).write_text(manifest_json(files), encoding="utf-8")
    except OSError as e:
        raise DestinationError(f"cannot write {folder}/{MANIFEST_NAME}: {e}") from e


def read_manifest(folder: Path) -> str | None:
    """The text of the manifest written at publish in an output folder, or None without one."""
    try:
        return (folder / MANIFEST_NAME).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as e:
        raise SourceReadError(f"cannot read {folder / MANIFEST_NAME}: {e}") from e


def folder_fingerprints(folder: Path) -> dict[str, str]:
    """Each Parquet file under ``folder`` (relative POSIX path) and its fingerprint, read from
    its footer."""
    return {p.relative_to(folder).as_posix(): fingerprint_of(p)
            for p in sorted(folder.rglob("*.parquet"))}


def fingerprint_of(path: Path) -> str:
    """A Parquet file's fingerprint, read from its footer (see ``file_fingerprint``)."""
    try:
        meta = pq.read_metadata(path).metadata or {}
    except (pa.ArrowException, OSError):
        meta = {}
    text = {k.decode(errors="replace"): v.decode(errors="replace") for k, v in meta.items()}
    return file_fingerprint(path.stat().st_size, text)


def checked_parquet(settings: Any) -> ChecksummedWriter:
    """The Parquet format's writer (see :mod:`celltable.adapters.formats`): every file carries
    its checksum."""
    return ChecksummedWriter(ParquetWriter(settings.compression, settings.memory_map))


class ParquetReader:
    """Implements :class:`celltable.domain.ports.OutputReader` for local Parquet outputs;
    ``memory_map``: read them through memory maps (``CELLTABLE_ARROW_USE_MEMORY_MAPPING``)."""

    def __init__(self, memory_map: bool = True) -> None:
        self.memory_map = memory_map

    def tables(self, dest_path: str) -> tuple[str, ...]:
        path = Path(dest_path).expanduser().absolute()
        if not path.exists():
            raise SourceNotFoundError(f"{path} does not exist; give the file (or --no-join "
                                      "folder) that celltable convert wrote")
        if path.is_file():
            return (str(path),)
        # a --no-join folder holds a file per table; partitioned by plate, a file per plate
        # (in a folder per table without a join)
        files = tuple(str(p) for p in sorted(path.rglob("*.parquet")))
        if not files:
            raise SourceReadError(f"{path} is a folder without Parquet files; give the file (or "
                                  "--no-join folder) that celltable convert wrote")
        return files

    def folder(self, dest_path: str) -> tuple[str | None, dict[str, str]] | None:
        path = Path(dest_path).expanduser().absolute()
        if not path.is_dir():
            return None
        return read_manifest(path), folder_fingerprints(path)

    def scan(self, path: str, key_columns: Sequence[str] | None,
             group_rows: Sequence[int] | None = None) -> OutputScan:
        try:
            pf = pq.ParquetFile(path, memory_map=self.memory_map)
            schema = pf.schema_arrow
            meta = {k.decode(errors="replace"): v.decode(errors="replace")
                    for k, v in (pf.metadata.metadata or {}).items()}
            checksum = columns = None
            if key_columns is not None or group_rows is not None:
                digest = TableDigest(schema, [k for k in key_columns or () if k in schema.names])
                digester = ColumnDigester(schema) if group_rows is not None else None
                rows = max(1024, BATCH_BYTES // (8 * max(1, len(schema))))
                batches = pf.iter_batches(batch_size=rows)
                if digester is not None:
                    batches = _tee(batches, digest.update)
                    digester.feed(batches, group_rows or ())
                    columns = digester.digests()
                else:
                    for batch in batches:
                        digest.update(batch)
                checksum = digest.checksum() if key_columns is not None else None
        except (pa.ArrowException, OSError) as e:
            raise SourceReadError(f"{path} is not a readable Parquet file ({e})") from e
        return OutputScan(path, pf.metadata.num_rows, domain_columns(schema),
                          tuple(sorted(meta.items())), checksum, columns)


def _tee(batches: Any, also: Any) -> Any:
    """``batches``, each also given to ``also`` as it passes."""
    for batch in batches:
        also(batch)
        yield batch
