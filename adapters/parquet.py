"""Parquet output through Arrow: chunks stream into one file.

Small chunks are gathered into row groups of at least ``ROW_GROUP_BYTES``: a row group costs a fixed
amount per column to write (thousands of columns make that dominate), and readers prefer row
groups of tens of megabytes. Large tables get larger row groups (:func:`row_group_bytes`): the
writer holds every row group's column metadata until it closes the file, about
``COLUMN_CHUNK_BYTES`` per column per row group, so many small row groups of a wide table cost
more memory than a few big ones.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from celltable.adapters.arrow_types import arrow_schema, domain_columns, fitted
from celltable.domain.errors import DestinationError
from celltable.domain.schema import Column

ROW_GROUP_BYTES = 32 * 2**20  # below an automatic chunk, which is then written at once
MAX_ROW_GROUP_BYTES = 512 * 2**20
COLUMN_CHUNK_BYTES = 850
"""Memory Arrow's Parquet writer keeps per column per row group until the file is closed
(measured: 190 MiB for 129 row groups of 1,832 columns, with or without statistics)."""


def row_group_bytes(rows: int, columns: int) -> int:
    """Row group size for a table of about ``rows`` × ``columns`` values (8 bytes each): the size
    that makes the least of what the writer holds at once, one row group gathered plus the
    metadata of all row groups, ``size + (total / size) × columns × COLUMN_CHUNK_BYTES``, i.e.
    the square root of ``total × columns × COLUMN_CHUNK_BYTES``; never below
    ``ROW_GROUP_BYTES`` nor above ``MAX_ROW_GROUP_BYTES``."""
    total = rows * columns * 8
    best = math.isqrt(total * columns * COLUMN_CHUNK_BYTES)
    return max(ROW_GROUP_BYTES, min(MAX_ROW_GROUP_BYTES, best))


@contextmanager
def _writing(path: str) -> Iterator[None]:
    """Name a failed write after its cause: most often a full disk."""
    try:
        yield
    except OSError as e:
        code = e.errno if e.errno is not None else next(
            (int(m) for m in re.findall(r"errno (\d+)", str(e))), None)
        why = os.strerror(code) if code is not None else str(e)
        raise DestinationError(
            f"cannot write {path}: {why}; the disk is full or a file size limit was reached: "
            "free space, or convert to another disk (--staging-dir moves intermediate data)"
        ) from e


class ParquetSink:
    """One Parquet file being written (see :class:`celltable.domain.ports.TableSink`)."""

    def __init__(self, path: str, schema: pa.Schema, compression: str, memory_map: bool,
                 row_group_bytes: int = ROW_GROUP_BYTES) -> None:
        self._path = path
        self._schema = schema
        self._memory_map = memory_map
        self._row_group_bytes = row_group_bytes
        self._pending: list[pa.Table] = []
        self._pending_bytes = 0
        self.on_row_group: Callable[[], None] | None = None
        """Called after each row group is written (the rows written since the last call)."""
        # Dictionaries pay off for repeated text (wells, plates, file names), not for measured
        # floats, where they cost time and space.
        text = [f.name for f in schema if pa.types.is_string(f.type)]
        self._writer = pq.ParquetWriter(path, schema, compression=compression, use_dictionary=text)

    def write(self, data: object) -> None:
        data = fitted(data, self._schema, self._path)
        if data.num_rows:
            self._pending.append(data)
            self._pending_bytes += data.nbytes
            if self._pending_bytes >= self._row_group_bytes:
                self._flush()

    def _flush(self) -> None:
        if self._pending:
            group = pa.concat_tables(self._pending)
            with _writing(self._path):
                self._writer.write_table(group, row_group_size=max(1, group.num_rows))
            if self.on_row_group is not None:
                self.on_row_group()
        self._pending, self._pending_bytes = [], 0

    def close(self, metadata: Mapping[str, str]) -> int:
        self._flush()
        self._writer.add_key_value_metadata(dict(metadata))
        with _writing(self._path):
            self._writer.close()
        # read the footer back: the rows the file really holds
        return pq.ParquetFile(self._path, memory_map=self._memory_map).metadata.num_rows


class ParquetWriter:
    """Creates Parquet files (see :class:`celltable.domain.ports.TableWriter`).

    Args:
        compression: The codec of every column (zstd by default: smaller than snappy, as fast
            to read).
        memory_map: Read files back through memory maps (``CELLTABLE_ARROW_USE_MEMORY_MAPPING``).
    """

    def __init__(self, compression: str = "zstd", memory_map: bool = True) -> None:
        self.compression = compression
        self.memory_map = memory_map

    def create(self, path: str, columns: Sequence[Column], rows: int = 0) -> ParquetSink:
        with _writing(path):
            Path(path).parent.mkdir(parents=True, exist_ok=True)  # a table's folder of plates
        return ParquetSink(path, arrow_schema(columns), self.compression, self.memory_map,
                           row_group_bytes(rows, len(columns)))

    def columns_of(self, data: object) -> Sequence[Column]:
        assert isinstance(data, pa.Table), type(data)
        return domain_columns(data.schema)
