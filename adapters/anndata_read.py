"""Reading AnnData outputs back for ``celltable validate``: obs, var and uns through anndata's
element API, X in bands of rows (bounded memory), the figures recomputed as
:mod:`celltable.adapters.anndata_out` computed them when writing."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd
import pyarrow as pa
import zarr
from anndata.io import read_elem

from celltable.adapters.anndata_out import (
    UNS_KEY,
    _quiet,
    stored_arrow,
    stored_digests,
    stored_type,
)
from celltable.adapters.parquet_checks import BATCH_BYTES, TableDigest, read_manifest
from celltable.domain.errors import SourceReadError
from celltable.domain.schema import Column, DataType
from celltable.domain.validation import Checksum, OutputScan, file_fingerprint

_ZARR_ERRORS = tuple(getattr(zarr.errors, n) for n in ("BaseZarrError",)
                     if hasattr(zarr.errors, n))  # zarr 3; zarr 2 raises the others


def _open(path: str) -> Any:
    if Path(path).is_dir():
        return zarr.open_group(path, mode="r")
    return h5py.File(path, "r")


class AnnDataReader:
    """Implements :class:`celltable.domain.ports.OutputReader` for ``.h5ad`` files and
    ``.zarr`` stores."""

    def __init__(self, memory_map: bool = True) -> None:
        del memory_map  # h5py and zarr read through their own I/O, never Arrow's memory maps

    def tables(self, dest_path: str) -> tuple[str, ...]:
        return (str(Path(dest_path).expanduser().absolute()),)

    def folder(self, dest_path: str) -> tuple[str | None, dict[str, str]] | None:
        path = Path(dest_path).expanduser().absolute()
        if not path.is_dir() or path.suffix.lower() == ".zarr":
            return None
        return read_manifest(path), anndata_fingerprints(path)

    def scan(self, path: str, key_columns: Sequence[str] | None,
             group_rows: Sequence[int] | None = None) -> OutputScan:
        try:
            root = _open(path)
        except (OSError, ValueError, *_ZARR_ERRORS) as e:
            raise SourceReadError(f"{path} is not a readable AnnData store ({e})") from e
        try:
            with _quiet():
                return self._scan(path, root, key_columns, group_rows is not None)
        except (KeyError, OSError, ValueError, TypeError) as e:
            raise SourceReadError(f"{path} is not a readable AnnData table ({e})") from e
        finally:
            if isinstance(root, h5py.File):
                root.close()

    def _scan(self, path: str, root: Any, key_columns: Sequence[str] | None,
              with_digests: bool) -> OutputScan:
        obs = read_elem(root["obs"])
        var_names = [str(n) for n in read_elem(root["var"]).index]
        uns = read_elem(root["uns"]).get(UNS_KEY, {})
        meta = {str(k): str(v) for k, v in uns.items() if isinstance(v, str)}
        x = root["X"]
        x_type = DataType.FLOAT32 if x.dtype == np.float32 else DataType.FLOAT64
        columns = (*(Column(str(n), DataType(stored_type(obs[n]))) for n in obs.columns),
                   *(Column(n, x_type) for n in var_names))
        checksum = None
        if key_columns is not None:
            checksum = self._checksum(obs, x, var_names, key_columns)
        digests = None
        if with_digests:
            digests = stored_digests([(str(n), stored_arrow(obs[n])) for n in obs.columns],
                                     x if var_names else None, var_names, int(x.shape[0]))
        return OutputScan(path, int(x.shape[0]), columns, tuple(sorted(meta.items())), checksum,
                          digests)

    @staticmethod
    def _checksum(obs: pd.DataFrame, x: Any, var_names: list[str],
                  key_columns: Sequence[str]) -> Checksum:
        keys = [k for k in key_columns if k in obs.columns]
        table = pa.table({k: pa.array(np.asarray(obs[k]) if not isinstance(
            obs[k].dtype, pd.CategoricalDtype) else obs[k].astype(object).to_numpy(),
            from_pandas=True) for k in keys})
        digest = TableDigest(table.schema, keys)
        digest.update(table)
        nans = np.zeros(len(var_names), dtype=np.int64)
        band = max(1, BATCH_BYTES // (8 * max(1, len(var_names))))
        for start in range(0, int(x.shape[0]), band):
            nans += np.isnan(np.asarray(x[start:start + band])).sum(axis=0)
        found = digest.checksum()
        nulls = [(str(n), int(obs[n].isna().sum())) for n in obs.columns]
        nulls += [(n, int(c)) for n, c in zip(var_names, nans, strict=True)]
        return Checksum(int(x.shape[0]), found.key_columns, found.key_digest, tuple(nulls))



def anndata_fingerprints(folder: Path) -> dict[str, str]:
    """Each AnnData table under ``folder`` (``.h5ad`` file or ``.zarr`` store; relative POSIX
    path) and its fingerprint: its size and its own records."""
    found = {}
    tables = [p for p in folder.rglob("*.h5ad") if p.is_file()]
    tables += [p for p in folder.rglob("*.zarr") if p.is_dir()]
    for p in sorted(tables):
        size = p.stat().st_size if p.is_file() else sum(
            f.stat().st_size for f in p.rglob("*") if f.is_file())
        try:
            root = _open(str(p))
            try:
                with _quiet():
                    uns = read_elem(root["uns"]).get(UNS_KEY, {})
            finally:
                if isinstance(root, h5py.File):
                    root.close()
            meta = {str(k): str(v) for k, v in uns.items() if isinstance(v, str)}
        except (OSError, KeyError, ValueError, *_ZARR_ERRORS):
            meta = {}
        found[p.relative_to(folder).as_posix()] = file_fingerprint(size, meta)
    return found
