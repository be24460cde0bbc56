"""Digests of every column of an output, per row group, so validation names the damaged
column and row group.

Each column's values in a row group are reduced to CRC-32s of canonical bytes (Arrow's value
buffers; text as lengths and UTF-8 bytes; positions of NULLs), which depend on the values alone,
not on how Arrow chunked them. The record keeps, per row group, one digest over all columns and,
per column, one digest over all row groups: a damaged value changes the digest of its row group
and of its column, and the record stays small (a few tens of kB for thousands of columns).
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc

from celltable.adapters.arrow_types import scalar, zero
from celltable.domain.validation import ColumnDigests

ALGORITHM = "celltable-columns-crc32-v1"


def _buffer(arr: pa.Array, width: int) -> memoryview | bytes:
    """The bytes of a fixed-width array without nulls, wherever it starts in its buffer."""
    data = arr.buffers()[1]
    if data is None or not len(arr):
        return b""
    return memoryview(data)[arr.offset * width:(arr.offset + len(arr)) * width]


class _Column:
    """Three CRC-32 streams of one column in one row group: values, text lengths, NULL
    positions (relative to the row group's first row)."""

    def __init__(self, type_: pa.DataType) -> None:
        self.type = type_
        self.values = self.lengths = self.nulls = 0

    def update(self, arr: pa.Array, start: int) -> None:
        if pa.types.is_dictionary(arr.type):
            arr = arr.dictionary_decode()
        if arr.null_count:
            where = pc.indices_nonzero(arr.is_null())
            where = pc.add(where, scalar(start, where.type)).cast(pa.int64())
            self.nulls = zlib.crc32(_buffer(where, 8), self.nulls)
        t = arr.type
        if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_binary(t) \
                or pa.types.is_large_binary(t):
            arr = arr.cast(pa.large_binary()) if not pa.types.is_large_binary(t) else arr
            lengths = pc.fill_null(pc.binary_length(arr), scalar(0, pa.int64())).cast(pa.int64())
            self.lengths = zlib.crc32(_buffer(lengths, 8), self.lengths)
            if len(arr):
                _, offsets, data = arr.buffers()
                (lo,) = struct.unpack_from("<q", offsets, arr.offset * 8)
                (hi,) = struct.unpack_from("<q", offsets, (arr.offset + len(arr)) * 8)
                if data is not None and hi > lo:
                    self.values = zlib.crc32(memoryview(data)[lo:hi], self.values)
            return
        if pa.types.is_boolean(t):
            arr = pc.fill_null(arr, scalar(False, pa.bool_())).cast(pa.uint8())
        elif pa.types.is_null(t):
            return
        elif arr.null_count:
            arr = pc.fill_null(arr, zero(t))
        self.values = zlib.crc32(_buffer(arr, arr.type.bit_width // 8), self.values)

    def digest(self) -> bytes:
        return struct.pack("<III", self.values, self.lengths, self.nulls)


class ColumnDigester:
    """Digests every column of a table fed in row order, row group by row group: the writer
    (or the validating reader) says where each row group ends."""

    def __init__(self, schema: pa.Schema) -> None:
        self._schema = schema
        self._groups: list[bytes] = []  # per row group: every column's digest, in order
        self._rows: list[int] = []
        self._start()

    def _start(self) -> None:
        self._current = [_Column(f.type) for f in self._schema]
        self._pending = 0

    def update(self, data: pa.Table | pa.RecordBatch) -> None:
        for digest, column in zip(self._current, data.columns, strict=True):
            chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
            start = self._pending
            for arr in chunks:
                digest.update(arr, start)
                start += len(arr)
        self._pending += data.num_rows

    def end_group(self) -> None:
        """The rows fed since the last call make a row group (nothing if none were fed)."""
        if self._pending:
            self._groups.append(b"".join(c.digest() for c in self._current))
            self._rows.append(self._pending)
        self._start()

    def feed(self, batches: object, group_rows: Sequence[int]) -> None:
        """Feed a file's batches (any sizes), cutting row groups after ``group_rows`` rows."""
        bounds = list(group_rows)
        for batch in batches:  # type: ignore[attr-defined]
            while batch.num_rows:
                room = bounds[0] - self._pending if bounds else batch.num_rows
                part, batch = batch.slice(0, room), batch.slice(room)
                self.update(part)
                if bounds and self._pending == bounds[0]:
                    bounds.pop(0)
                    self.end_group()
        self.end_group()

    def digests(self) -> ColumnDigests:
        self.end_group()
        width = 12
        names = self._schema.names
        columns = []
        for i, name in enumerate(names):
            h = hashlib.sha256()
            for g in self._groups:
                h.update(g[i * width:(i + 1) * width])
            columns.append((name, h.hexdigest()[:16]))
        groups = tuple(hashlib.sha256(g).hexdigest()[:16] for g in self._groups)
        return ColumnDigests(ALGORITHM, tuple(self._rows), groups, tuple(columns))
