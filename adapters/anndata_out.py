"""AnnData output (``.h5ad`` through h5py, ``.zarr`` through zarr), written chunk by chunk.

anndata's own element API (``anndata.io.write_elem``) writes every element with its encoding;
X is created by it empty and resizable, then grows with each chunk (h5py's ``resize``, zarr's
``append``), so memory holds one chunk. The other columns (keys, metadata, image columns: a
small share of the values) are spooled to an Arrow file beside the table and written as obs when
the table closes, one column at a time.

* X: the feature columns (role ``feature``, numbers), float64, or float32 with ``float32``;
  a missing value is NaN.
* obs: every other column with its type (text as categoricals, integers with missing values as
  nullable integers); obs_names are the row numbers (``"0"``, ``"1"`` ...), since pycytominer
  reads them as integers; the plate, image and object keys are obs columns.
* var: per feature its compartment, feature group and channel.
* uns["celltable"]: the provenance, the checksum and the run's counts.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import zarr
from anndata.io import write_elem

from celltable.adapters.arrow_types import arrow_schema, domain_columns, fitted
from celltable.adapters.column_digest import ColumnDigester
from celltable.adapters.parquet_checks import TableDigest, key_columns_of
from celltable.domain.naming import channels_of, feature_parts
from celltable.domain.schema import Column, DataType, Role
from celltable.domain.validation import (
    CHECKSUM_KEY,
    COLUMNS_KEY,
    PROVENANCE_KEY,
    Checksum,
    ColumnDigests,
)

UNS_KEY = "celltable"
X_CHUNK_BYTES = 2**20  # bytes of one stored chunk of X (a band of whole rows)
X_BAND_BYTES = 4 * 2**20  # bytes of X filled from the Arrow columns and written at once
_NUMERIC = {DataType.BOOL, DataType.INT64, DataType.FLOAT32, DataType.FLOAT64, DataType.NULL}


def in_x(column: Column) -> bool:
    """Whether a column goes into X: a feature holding numbers (a feature holding text stays an
    obs column)."""
    return column.role is Role.FEATURE and column.type in _NUMERIC


def stored_type(values: Any) -> str:
    """The domain type name of an obs column or X as stored (what validate reads back)."""
    dtype = values.dtype
    if isinstance(dtype, pd.CategoricalDtype) or pd.api.types.is_object_dtype(dtype):
        return DataType.STRING.value
    if pd.api.types.is_bool_dtype(dtype):
        return DataType.BOOL.value
    if pd.api.types.is_integer_dtype(dtype):
        return DataType.INT64.value
    return DataType.FLOAT32.value if dtype == np.float32 else DataType.FLOAT64.value


def obs_values(column: pa.ChunkedArray) -> Any:
    """An obs column as anndata stores it: text (and all-missing columns) as a categorical,
    integers and booleans with missing values as pandas' nullable types."""
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type) \
            or pa.types.is_null(column.type):
        codes = column.cast(pa.string()).dictionary_encode().combine_chunks()
        return pd.Categorical.from_codes(
            pc.fill_null(codes.indices, -1).to_numpy(zero_copy_only=False),
            categories=pd.Index(codes.dictionary.to_pylist(), dtype=object))
    if column.null_count and pa.types.is_integer(column.type):
        return pd.array(column.to_pylist(), dtype="Int64")
    if column.null_count and pa.types.is_boolean(column.type):
        return pd.array(column.to_pylist(), dtype="boolean")
    return column.to_numpy()


class AnnDataSink:
    """One AnnData table being written (see :class:`celltable.domain.ports.TableSink`)."""

    def __init__(self, path: str, columns: Sequence[Column], zarr_store: bool,
                 float32: bool) -> None:
        self._path, self._zarr = path, zarr_store
        self._schema = arrow_schema(columns)
        self._features = [c for c in columns if in_x(c)]
        self._obs = [c.name for c in columns if not in_x(c)]
        self._dtype = np.float32 if float32 else np.float64
        self._rows = 0
        self.record: dict[str, str] = {}
        self._buffer = np.empty((0, 0), dtype=self._dtype)  # reused: no fresh pages per band
        # X is filled and stored a band of rows at a time, so the writer holds a band, not a
        # whole chunk, on top of the chunk
        self._band = max(1, X_BAND_BYTES // (max(1, len(self._features))
                                             * np.dtype(self._dtype).itemsize))
        self._nans = np.zeros(len(self._features), dtype=np.int64)
        obs_schema = pa.schema([self._schema.field(n) for n in self._obs])
        self._digest = TableDigest(obs_schema, key_columns_of(obs_schema))
        self._spool_path = f"{path}.obs.arrow"
        self._spool = pa.ipc.new_file(self._spool_path, obs_schema)
        self._root = self._open()
        width = len(self._features)
        if width:
            band = max(1, X_CHUNK_BYTES // (width * np.dtype(self._dtype).itemsize))
            kwargs: dict[str, Any] = {"chunks": (band, width)}
            if not zarr_store:
                kwargs["maxshape"] = (None, width)
            with _quiet():
                write_elem(self._root, "X", np.empty((0, width), self._dtype),
                           dataset_kwargs=kwargs)

    def _open(self) -> Any:
        if self._zarr:
            return zarr.open_group(self._path, mode="w")
        return h5py.File(self._path, "w")

    def write(self, data: object) -> None:
        data = fitted(data, self._schema, self._path)
        if not data.num_rows:
            return
        obs = data.select(self._obs)
        self._spool.write_table(obs)
        self._digest.update(obs)
        if self._features:
            x = self._root["X"]
            ready = [_float_view(data.column(c.name)) for c in self._features]
            for start in range(0, data.num_rows, self._band):
                block = self._block(data, ready, start)
                self._nans += np.count_nonzero(np.isnan(block), axis=0)
                if self._zarr:
                    x.append(block)
                else:
                    x.resize(self._rows + start + len(block), axis=0)
                    x[self._rows + start:] = block
        self._rows += data.num_rows

    def _block(self, data: pa.Table, ready: list[np.ndarray | None], start: int) -> np.ndarray:
        """Rows ``start`` onwards (a band) of X from the feature columns, in a buffer kept for
        the next band (each write copies it into the store): from the columns' own memory
        where Arrow shares it, else converted a band at a time."""
        rows = min(self._band, data.num_rows - start)
        if len(self._buffer) < rows:
            self._buffer = np.empty((rows, len(self._features)), dtype=self._dtype)
        block = self._buffer[:rows]
        for j, (col, view) in enumerate(zip(self._features, ready, strict=True)):
            if view is not None:
                block[:, j] = view[start:start + rows]
                continue
            values = data.column(col.name).slice(start, rows)
            if not pa.types.is_floating(values.type):
                values = values.cast(pa.float64())
            block[:, j] = values.to_numpy()  # missing values become NaN
        return block

    def close(self, metadata: Mapping[str, str]) -> int:
        self._spool.close()
        root = self._root
        try:
            with _quiet():
                names = pd.Index(np.arange(self._rows).astype(str))
                write_elem(root, "obs", pd.DataFrame(index=names))
                stored: list[list[str]] = []
                nulls: list[tuple[str, int]] = []
                as_stored: list[tuple[str, pa.Array]] = []
                with pa.memory_map(self._spool_path) as source:
                    spooled = pa.ipc.open_file(source).read_all()
                    for name in self._obs:
                        values = obs_values(spooled.column(name))
                        write_elem(root["obs"], name, values)
                        stored.append([name, stored_type(values)])
                        nulls.append((name, int(pd.isna(values).sum())))
                        as_stored.append((name, stored_arrow(values)))
                    del spooled
                root["obs"].attrs["column-order"] = list(self._obs)
                if not self._features:
                    write_elem(root, "X", np.empty((self._rows, 0), self._dtype))
                write_elem(root, "var", self._var())
                x_type = DataType.FLOAT32.value if self._dtype == np.float32 else "float64"
                stored += [[c.name, x_type] for c in self._features]
                nulls += [(c.name, int(n)) for c, n in zip(self._features, self._nans,
                                                             strict=True)]
                checksum = self._digest.checksum()
                checksum = Checksum(checksum.rows, checksum.key_columns, checksum.key_digest,
                                    tuple(nulls))
                digests = stored_digests(as_stored, root["X"] if self._features else None,
                                         [c.name for c in self._features], self._rows)
                write_elem(root, "uns", {UNS_KEY: _uns(metadata, stored, checksum, digests)})
                # what a folder's manifest records of this table (see ``seal``)
                self.record = {CHECKSUM_KEY: checksum.to_json(), COLUMNS_KEY: digests.to_json()}
                for key in ("obsm", "varm", "obsp", "varp", "layers"):
                    write_elem(root, key, {})
                _mark_anndata(root)
        finally:
            if not self._zarr:
                root.close()
            Path(self._spool_path).unlink(missing_ok=True)
        return self._rows

    def _var(self) -> pd.DataFrame:
        channels = channels_of(self._schema.names)
        parts = [feature_parts(c.name, c.compartment, channels) for c in self._features]
        return pd.DataFrame(
            {"compartment": pd.Categorical([c.compartment for c in self._features]),
             "feature_group": pd.Categorical([g for g, _ in parts]),
             "channel": pd.Categorical([ch for _, ch in parts])},
            index=pd.Index([c.name for c in self._features]))


def _float_view(column: pa.ChunkedArray) -> np.ndarray | None:
    """The column's values without a copy, when Arrow holds them as one run of floats without
    missing values; else None."""
    if column.num_chunks != 1 or column.null_count or not pa.types.is_floating(column.type):
        return None
    return column.chunk(0).to_numpy(zero_copy_only=True)


def stored_arrow(values: Any) -> pa.Array:
    """An obs column as stored, in Arrow (what its column digest is computed over, when
    written and when validated)."""
    return pa.Array.from_pandas(pd.Series(values))


def stored_digests(obs: list[tuple[str, pa.Array]], x: Any, features: list[str],
                   rows: int) -> ColumnDigests:
    """The digests of every column as stored (obs columns, then X's, read back in bands), the
    whole table one row group: the same figures whether computed by the writer or by
    validation."""
    width = max(1, len(features) + len(obs))
    band = max(1, X_BAND_BYTES // (8 * width))
    digester: ColumnDigester | None = None
    for start in range(0, rows, band):
        block = np.asarray(x[start:start + band]) if x is not None else None
        arrays = [a.slice(start, band) for _, a in obs]
        arrays += [pa.array(block[:, j]) for j in range(len(features))] if block is not None \
            else []
        table = pa.table(arrays, names=[n for n, _ in obs] + features)
        if digester is None:
            digester = ColumnDigester(table.schema)
        digester.update(table)
    if digester is None:  # no rows
        digester = ColumnDigester(pa.schema([(n, a.type) for n, a in obs]
                                            + [(f, pa.float64()) for f in features]))
    return digester.digests()


def _uns(metadata: Mapping[str, str], stored: list[list[str]], checksum: Checksum,
         digests: ColumnDigests) -> dict:
    """uns["celltable"]: the metadata as written beside a Parquet file, with the schema of the
    provenance made the columns as stored (obs columns, then X's), and the run's counts."""
    prov = json.loads(metadata.get(PROVENANCE_KEY, "{}"))
    prov["schema"] = stored
    counts = {k: int(prov[k]) for k in ("rows_in", "rows_out", "rows_dropped") if k in prov}
    return {**{k: v for k, v in metadata.items() if k != PROVENANCE_KEY},
            PROVENANCE_KEY: json.dumps(prov, sort_keys=True, default=str),
            CHECKSUM_KEY: checksum.to_json(), COLUMNS_KEY: digests.to_json(), "counts": counts}


def _mark_anndata(root: Any) -> None:
    """The root's encoding, as anndata writes it for a whole AnnData."""
    root.attrs["encoding-type"] = "anndata"
    root.attrs["encoding-version"] = "0.1.0"


class _quiet(warnings.catch_warnings):
    """zarr's notice that its defaults will change is not the user's concern."""

    def __enter__(self) -> None:
        super().__enter__()
        warnings.filterwarnings("ignore", message=".*zarr v3.*")
        warnings.filterwarnings("ignore", category=FutureWarning, module="anndata")


class AnnDataWriter:
    """Creates AnnData tables (see :class:`celltable.domain.ports.TableWriter`)."""

    def __init__(self, zarr_store: bool, float32: bool = False) -> None:
        self._zarr, self._float32 = zarr_store, float32

    def create(self, path: str, columns: Sequence[Column], rows: int = 0) -> AnnDataSink:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        return AnnDataSink(path, columns, self._zarr, self._float32)

    def columns_of(self, data: object) -> Sequence[Column]:
        assert isinstance(data, pa.Table), type(data)
        return domain_columns(data.schema)

    def seal(self, folder: str) -> None:
        from celltable.adapters.anndata_read import anndata_fingerprints
        from celltable.adapters.parquet_checks import write_manifest

        write_manifest(Path(folder), anndata_fingerprints(Path(folder)))


def h5ad_writer(settings: Any) -> AnnDataWriter:
    return AnnDataWriter(zarr_store=False, float32=settings.float32)


def zarr_writer(settings: Any) -> AnnDataWriter:
    return AnnDataWriter(zarr_store=True, float32=settings.float32)
