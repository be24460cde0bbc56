"""DeepProfiler NPZ files on the shared data: one plate folder of sites, one row per cell.

Expected values come from the files, read with NumPy's own loader (the shared files are
trusted: here it is the oracle, never celltable's reader)."""

from __future__ import annotations

import io
import os
import shutil
import zipfile

import numpy as np
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

import celltable
from celltable.cli import app
from celltable.domain.errors import SourceReadError
from tests.conftest import REAL_DATA

DP = REAL_DATA / "deepprofiler" / "pycytominer_example"
PLATE = "SQ00014812"



def _sites() -> list[tuple[str, np.ndarray, np.ndarray, dict]]:
    """``(file name, features, locations, metadata)`` of each file, in name order."""
    out = []
    for path in sorted((DP / PLATE).glob("*.npz")):
        with np.load(path, allow_pickle=True) as npz:
            out.append((path.name, npz["features"], npz["locations"], npz["metadata"].item()))
    return out


def _check(path, sites) -> None:
    table = pq.read_table(path)
    assert table.num_rows == sum(f.shape[0] for _, f, _, _ in sites) == 337
    (_, features, _, metadata), *_ = sites
    model = metadata.get("Metadata_Model", "DP")
    meta_names = {k if k.startswith("Metadata_") else f"Metadata_{k}" for k in metadata}
    # keys, the file, the metadata, x and y, the features
    assert table.num_columns == 3 + 1 + len(meta_names) + 2 + features.shape[1]
    names = table.column_names
    assert names[:3] == ["Metadata_TableNumber", "Metadata_ImageNumber", "Metadata_ObjectNumber"]
    features_at = names.index(f"{model}_0")
    assert names[features_at - 2:features_at] == ["Location_Center_X", "Location_Center_Y"]
    assert names[features_at:] == [f"{model}_{i}" for i in range(features.shape[1])]
    assert set(names[3:features_at - 2]) == meta_names | {"Metadata_NPZSource"}
    assert {str(table.schema.field(n).type) for n in names[features_at:]} == {"float"}  # float32
    start = 0
    for image, (name, feats, locs, meta) in enumerate(sites, start=1):
        n = feats.shape[0]
        part = table.slice(start, n)
        start += n
        assert set(part.column("Metadata_TableNumber").to_pylist()) == {PLATE}
        assert part.column("Metadata_ImageNumber").to_pylist() == [image] * n
        assert part.column("Metadata_ObjectNumber").to_pylist() == list(range(1, n + 1))
        assert set(part.column("Metadata_NPZSource").to_pylist()) == {name}
        for key, value in meta.items():
            col = key if key.startswith("Metadata_") else f"Metadata_{key}"
            assert set(part.column(col).to_pylist()) == {value}, col
        np.testing.assert_array_equal(part.column("Location_Center_X").to_numpy(), locs[:, 0])
        np.testing.assert_array_equal(part.column("Location_Center_Y").to_numpy(), locs[:, 1])
        for i in (0, 1, 777, feats.shape[1] - 1):
            got = part.column(f"{model}_{i}").to_numpy()
            assert got.dtype == np.float32
            np.testing.assert_array_equal(got, feats[:, i])  # exact: float32 in, float32 out


def test_deepprofiler_npz_converts_from_the_command_line_without_flags(tmp_path):
    dest = tmp_path / "dp.parquet"
    result = CliRunner().invoke(app, ["convert", str(DP), str(dest), "--quiet"])
    assert result.exit_code == 0, result.output
    _check(dest, _sites())
    checked = CliRunner().invoke(app, ["validate", str(dest)])
    assert checked.exit_code == 0, checked.output


def test_deepprofiler_npz_converts_from_python_with_any_chunk_size(tmp_path):
    sites = _sites()
    result = celltable.convert(DP, tmp_path / "a.parquet")
    assert (result.preset, result.plates, result.rows_out) == ("deepprofiler", (PLATE,), 337)
    assert result.tables[0].dropped == 0
    _check(result.dest_path, sites)
    small = celltable.convert(DP, tmp_path / "b.parquet", preset="deepprofiler", chunk_size=1)
    assert pq.ParquetFile(small.dest_path).metadata.num_row_groups >= 1
    assert pq.read_table(small.dest_path).equals(pq.read_table(result.dest_path))


def test_one_npz_file_and_one_plate_folder_convert_alone(tmp_path):
    (name, feats, _, _), *_ = _sites()
    one = celltable.convert(DP / PLATE / name, tmp_path / "one.parquet")
    assert one.rows_out == feats.shape[0] and one.plates == (name,)
    folder = celltable.convert(DP / PLATE, tmp_path / "plate.parquet")
    assert folder.plates == (PLATE,) and folder.rows_out == 337


def test_deepprofiler_is_inspected_from_headers(tmp_path):
    report = celltable.inspect(DP)
    assert report.preset == "deepprofiler" and report.issues == ()
    (plate,) = report.plates
    (table,) = plate.tables
    assert table.rows == 337 and len(table.schema.columns) == 6421  # all but Metadata_TableNumber


def test_float32_option_keeps_locations_float64(tmp_path):
    result = celltable.convert(DP, tmp_path / "f.parquet",
                               options=celltable.ConversionOptions(float32=True))
    schema = pq.read_schema(result.dest_path)
    assert str(schema.field("Location_Center_X").type) == "double"
    assert str(schema.field("efficientnet_0").type) == "float"


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=True)
    return buf.getvalue()


def _write_site(path, cells: int, metadata: object, features: int = 3) -> None:
    rng = np.random.default_rng(cells)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("features.npy", _npy(rng.random((cells, features), dtype=np.float32)))
        zf.writestr("locations.npy", _npy(rng.random((cells, 2)) * 100))
        zf.writestr("metadata.npy", _npy(np.array(metadata, dtype=object)))


def test_sites_with_different_metadata_give_the_union_with_widened_types(tmp_path):
    plate = tmp_path / "src" / "P1"
    plate.mkdir(parents=True)
    _write_site(plate / "A01_1.npz", 2, {"Metadata_Site": 1, "Metadata_Well": "A01"})
    _write_site(plate / "A01_2.npz", 3, {"Metadata_Site": "2b", "Extra": 0.5,
                                         "Metadata_Model": "resnet"}, features=2)
    result = celltable.convert(tmp_path / "src", tmp_path / "o.parquet")
    table = pq.read_table(result.dest_path)
    assert table.num_rows == 5
    assert table.column("Metadata_Site").to_pylist() == ["1", "1", "2b", "2b", "2b"]
    assert table.column("Metadata_Extra").to_pylist() == [None, None, 0.5, 0.5, 0.5]
    assert table.column("Metadata_Well").to_pylist() == ["A01", "A01", None, None, None]
    assert table.column("DP_2").to_pylist()[2:] == [None] * 3  # each model's own columns
    assert table.column("resnet_1").null_count == 2
    # join SQL queries a copy in DuckDB, made file by file with the same widening
    sql = celltable.convert(tmp_path / "src", tmp_path / "sql.parquet", options=celltable.ConversionOptions(
        join_sql='SELECT "Metadata_Site", "Metadata_Extra", "DP_2" FROM Cells ORDER BY ImageNumber, ObjectNumber'))
    copied = pq.read_table(sql.dest_path)
    assert copied.column("Metadata_Site").to_pylist() == ["1", "1", "2b", "2b", "2b"]
    assert copied.column("Metadata_Extra").to_pylist() == [None, None, 0.5, 0.5, 0.5]
    assert copied.column("DP_2").to_pylist()[:2] == table.column("DP_2").to_pylist()[:2]


def test_a_plate_holding_a_hostile_npz_fails_and_runs_nothing(tmp_path):
    class RunsCommand:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    marker = tmp_path / "ran"
    src = tmp_path / "src"
    shutil.copytree(DP, src)
    _write_site(src / PLATE / "A02_1.npz", 2, RunsCommand())
    dest = tmp_path / "o.parquet"
    with pytest.raises(SourceReadError, match=r"A02_1\.npz"):
        celltable.convert(src, dest)
    result = CliRunner().invoke(app, ["convert", str(src), str(dest), "--quiet"])
    assert result.exit_code == 1 and "A02_1.npz" in result.output
    result = CliRunner().invoke(app, ["inspect", str(src)])
    assert result.exit_code == 1 and "A02_1.npz" in result.output
    assert not dest.exists() and not marker.exists()
