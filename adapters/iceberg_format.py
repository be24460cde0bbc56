"""The Iceberg output format (see :mod:`celltable.adapters.formats`): the writer of a
warehouse's profiles data file (Parquet with its checksum, plus the stable object id) and the
reader ``celltable validate`` checks a warehouse's profiles with. The warehouse itself, its
catalog and commits, is :mod:`celltable.adapters.iceberg`."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from celltable.adapters.iceberg import IcebergWarehouse, catalog_errors, pyiceberg_catalog
from celltable.domain.errors import WarehouseError
from celltable.domain.naming import OBJECT_NUMBER, TABLE_NUMBER
from celltable.domain.schema import Column, DataType
from celltable.domain.warehouse import OBJECT_ID, PROFILES, PROFILES_TABLE

KEYS = (TABLE_NUMBER, "Metadata_ImageNumber", OBJECT_NUMBER)
PROVENANCE = "celltable.provenance"


class ObjectIdWriter:
    """A :class:`celltable.domain.ports.TableWriter` adding :data:`OBJECT_ID` after the key
    columns of every table it creates (the profiles of a warehouse)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def create(self, path: str, columns: Sequence[Column], rows: int = 0) -> _ObjectIdSink:
        names = [c.name for c in columns]
        keys = [k for k in KEYS if k in names]
        at = max((names.index(k) + 1 for k in keys), default=0)
        with_id = (*columns[:at], Column(OBJECT_ID, DataType.STRING), *columns[at:])
        return _ObjectIdSink(self.inner.create(path, with_id, rows), at, keys)

    def columns_of(self, data: object) -> Sequence[Column]:
        return self.inner.columns_of(data)

    def seal(self, folder: str) -> None:
        self.inner.seal(folder)


class _ObjectIdSink:
    def __init__(self, inner: Any, at: int, keys: Sequence[str]) -> None:
        self.inner = inner
        self.at = at
        self.keys = keys

    def write(self, data: object) -> None:
        assert isinstance(data, pa.Table), type(data)
        if not all(k in data.column_names for k in self.keys):
            self.inner.write(data)  # which raises the named error for rows not fitting
        ids = pc.binary_join_element_wise(
            *(pc.cast(data.column(k), pa.string()) for k in self.keys), "/")
        self.inner.write(data.add_column(self.at, OBJECT_ID, ids))

    def close(self, metadata: Mapping[str, str]) -> int:
        # the provenance lists the plan's columns: the id is one more, where it was added
        meta = dict(metadata)
        if PROVENANCE in meta:
            prov = json.loads(meta[PROVENANCE])
            if isinstance(prov.get("schema"), list):
                prov["schema"].insert(self.at, [OBJECT_ID, DataType.STRING.value])
                meta[PROVENANCE] = json.dumps(prov, sort_keys=True, default=str)
        return self.inner.close(meta)


def profiles_writer(settings: Any) -> ObjectIdWriter:
    """The Iceberg format's writer (see :mod:`celltable.adapters.formats`): the profiles' data
    file, Parquet with its checksum, and the object id."""
    pyiceberg_catalog()  # a missing extra is named before anything is converted
    from celltable.adapters.parquet_checks import checked_parquet

    return ObjectIdWriter(checked_parquet(settings))


class WarehouseReader:
    """Re-reads the profiles of a warehouse for ``celltable validate`` (see
    :class:`celltable.domain.ports.OutputReader`): each data file of the profiles table's
    current snapshot, checked against the checksum its writer recorded; ``memory_map``: read
    them through memory maps (``CELLTABLE_ARROW_USE_MEMORY_MAPPING``)."""

    def __init__(self, memory_map: bool = True) -> None:
        self.memory_map = memory_map

    def tables(self, dest_path: str) -> tuple[str, ...]:
        warehouse = IcebergWarehouse(dest_path)
        table = warehouse._table(PROFILES, PROFILES_TABLE)
        if table is None:
            raise WarehouseError(f"{dest_path} has no profiles table yet")
        with catalog_errors(f"cannot list the data files of {dest_path}"):
            files = [task.file.file_path for task in table.scan().plan_files()]
        return tuple(sorted(f[len("file://"):] if f.startswith("file://") else f for f in files))

    def scan(self, path: str, key_columns: Any, group_rows: Any = None) -> Any:
        from celltable.adapters.parquet_checks import ParquetReader

        return ParquetReader(self.memory_map).scan(path, key_columns, group_rows)

    def folder(self, dest_path: str) -> None:
        """None: each data file is checked on its own (the snapshot, not a manifest file,
        says which files the table holds)."""
        return None
