"""Every registered output format's sink, built in a worker process from the registry alone (as a
worker writing one partition file would), holds what it was given: rows, columns by role,
provenance, and a checksum its format's reader recomputes."""

from __future__ import annotations

import json
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

import numpy as np
import pyarrow as pa
import pytest

from celltable.adapters.formats import FORMATS, FormatReader, WriterSettings, format_of, writer
from celltable.application.validate import validate
from celltable.domain.schema import Column, DataType, Role
from celltable.domain.validation import CHECKSUM_KEY, PROVENANCE_KEY

COLUMNS = (
    Column("Metadata_TableNumber", DataType.STRING, Role.KEY),
    Column("Metadata_ImageNumber", DataType.INT64, Role.KEY),
    Column("Metadata_ObjectNumber", DataType.INT64, Role.KEY),
    Column("Metadata_Well", DataType.STRING, Role.METADATA),
    Column("Cells_AreaShape_Area", DataType.FLOAT64, Role.FEATURE, "Cells"),
    Column("Cells_Count", DataType.INT64, Role.FEATURE, "Cells"),
)


def _batch(start, n):
    rows = range(start, start + n)
    return pa.table({
        "Metadata_TableNumber": ["p"] * n,
        "Metadata_ImageNumber": pa.array([i // 4 for i in rows], pa.int64()),
        "Metadata_ObjectNumber": pa.array([i % 4 + 1 for i in rows], pa.int64()),
        "Metadata_Well": [None if i % 5 == 0 else "A01" for i in rows],
        "Cells_AreaShape_Area": [None if i % 3 == 0 else i * 0.5 for i in rows],
        "Cells_Count": pa.array([i for i in rows], pa.int64()),
    })


def _write(name: str, path: str) -> int:
    """Runs in a worker process: the sink comes from the registry by the format's name."""
    sink = writer(name, WriterSettings()).create(path, COLUMNS, 30)
    sink.write(_batch(0, 12))
    sink.write(_batch(12, 0))
    sink.write(_batch(12, 18))
    schema = [[c.name, c.type.value] for c in COLUMNS]
    return sink.close({"data-producer": "celltable", "data-producer-version": "0",
                       PROVENANCE_KEY: json.dumps({"rows_out": 30, "preset": "t",
                                                   "schema": schema})})


@pytest.mark.parametrize("fmt", FORMATS, ids=[f.name for f in FORMATS])
def test_a_sink_built_in_a_worker_writes_what_its_reader_reads_back(tmp_path, fmt):
    path = str(tmp_path / f"t{fmt.suffix}")
    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
        assert pool.submit(_write, fmt.name, path).result() == 30
    assert format_of(path) == fmt
    reader = FormatReader()
    assert reader.tables(str(tmp_path)) == (path,)
    scan = reader.scan(path, ["Metadata_TableNumber", "Metadata_ImageNumber",
                              "Metadata_ObjectNumber"])
    assert scan.footer_rows == 30 and scan.checksum is not None and scan.checksum.rows == 30
    meta = dict(scan.metadata)
    assert json.loads(meta[PROVENANCE_KEY])["rows_out"] == 30 and CHECKSUM_KEY in meta
    assert dict(scan.checksum.null_counts)["Metadata_Well"] == 6
    assert dict(scan.checksum.null_counts)["Cells_AreaShape_Area"] == 10
    report = validate(str(tmp_path), reader)
    assert report.ok, report


def test_anndata_x_is_written_in_bands_of_rows_and_holds_every_value(tmp_path, monkeypatch):
    anndata = pytest.importorskip("anndata")
    from celltable.adapters import anndata_out

    monkeypatch.setattr(anndata_out, "X_BAND_BYTES", 2 * 8 * 4)  # 4 rows of 2 features
    for suffix, store in ((".h5ad", False), (".zarr", True)):
        path = str(tmp_path / f"b{suffix}")
        sink = anndata_out.AnnDataWriter(store).create(path, COLUMNS)
        whole = _batch(0, 16)
        for b in (whole.slice(0, 11), whole.slice(11, 4), whole.slice(15, 1)):
            sink.write(b)
        assert sink.close({PROVENANCE_KEY: json.dumps({"rows_out": 16})}) == 16
        adata = anndata.read_zarr(path) if store else anndata.read_h5ad(path)
        expected = [[float("nan") if v is None else float(v) for v in whole.column(n).to_pylist()]
                    for n in ("Cells_AreaShape_Area", "Cells_Count")]
        np.testing.assert_array_equal(adata.X.T, np.array(expected))
        assert list(adata.obs["Metadata_ObjectNumber"]) == whole.column(
            "Metadata_ObjectNumber").to_pylist()
