"""AnnData output (.h5ad, .zarr): what anndata reads back, against the Parquet output of the
same source; every source format; validation; the format chosen from --format or DEST."""

from __future__ import annotations

import sys

import h5py
import numpy as np
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

import celltable
from celltable.cli import app
from celltable.domain.errors import MissingExtraError, OutputFormatError
from tests.conftest import EXAMPLE_HUMAN, NF1_SQLITE, REAL_DATA

ad = pytest.importorskip("anndata")  # the [anndata] extra, installed by CI

CYTOMINER = REAL_DATA / "cytominer-database" / "data_a"
DEEPPROFILER = REAL_DATA / "deepprofiler" / "pycytominer_example"
IN_CARTA = REAL_DATA / "in-carta" / "colas-lab"


def _read(path):
    return ad.read_zarr(path) if str(path).endswith(".zarr") else ad.read_h5ad(path)


def _against_parquet(adata, parquet_path, float32=False):
    """X holds exactly the Parquet file's feature columns, obs every other column."""
    table = pq.read_table(parquet_path)
    assert list(adata.var_names) + list(adata.obs.columns) != []
    assert sorted([*adata.var_names, *adata.obs.columns]) == sorted(table.column_names)
    assert list(adata.obs_names) == [str(i) for i in range(table.num_rows)]
    assert adata.X.dtype == (np.float32 if float32 else np.float64)
    for i, name in enumerate(adata.var_names):
        expected = table.column(name).to_numpy(zero_copy_only=False).astype(adata.X.dtype)
        np.testing.assert_array_equal(adata.X[:, i], expected, err_msg=name)
    for name in adata.obs.columns:
        expected = table.column(name).to_pylist()
        found = [None if v is None or v != v else v for v in adata.obs[name].tolist()]
        assert found == [None if v is None or v != v else v for v in expected], name
    return table


@pytest.mark.parametrize("suffix", [".h5ad", ".zarr"])
def test_example_human_reads_back_in_anndata_as_its_parquet_output(tmp_path, suffix):
    parquet = celltable.convert(EXAMPLE_HUMAN, tmp_path / "o.parquet").dest_path
    result = celltable.convert(EXAMPLE_HUMAN, tmp_path / f"o{suffix}")
    adata = _read(result.dest_path)
    assert adata.shape == (289, len(adata.var_names)) and adata.n_vars > 200
    _against_parquet(adata, parquet)
    assert all(n.startswith(("Cells_", "Cytoplasm_", "Nuclei_")) for n in adata.var_names)
    assert not any(n.startswith(("Metadata_", "Image_")) for n in adata.var_names)
    assert str(adata.obs["Metadata_TableNumber"].dtype) == "category"
    assert str(adata.obs["Image_FileName_DNA"].dtype) == "category"
    assert adata.obs["Metadata_ObjectNumber"].dtype == np.int64
    var = adata.var
    assert var.loc["Cells_AreaShape_Area"].tolist() == ["Cells", "AreaShape", ""]
    assert var.loc["Nuclei_Intensity_MeanIntensity_DNA"].tolist() == ["Nuclei", "Intensity", "DNA"]
    assert set(var["compartment"]) == {"Cells", "Cytoplasm", "Nuclei"}
    meta = adata.uns["celltable"]
    assert meta["counts"] == {"rows_in": 289, "rows_out": 289, "rows_dropped": 0}
    assert '"preset": "cellprofiler_csv"' in meta["celltable.provenance"]
    assert celltable.validate(result.dest_path).ok


def test_a_multi_plate_source_gives_one_table_or_one_file_per_plate(tmp_path,
                                                                     three_example_plates):
    parquet = celltable.convert(three_example_plates, tmp_path / "o.parquet").dest_path
    whole = _read(celltable.convert(three_example_plates, tmp_path / "o.h5ad",
                                    chunk_size=100).dest_path)
    table = _against_parquet(whole, parquet)
    assert table.num_rows == 3 * 289
    assert list(whole.obs["Metadata_TableNumber"].cat.categories) == ["plate_a", "plate_b",
                                                                       "plate_c"]
    parts = celltable.convert(three_example_plates, tmp_path / "parts", format="zarr",
                              options=celltable.ConversionOptions(partition_by="plate"))
    stores = sorted(p.name for p in (tmp_path / "parts").iterdir())
    assert stores == ["_celltable_manifest.json", "plate_a.zarr", "plate_b.zarr", "plate_c.zarr"]
    stores = stores[1:]
    for name in stores:
        part = _read(tmp_path / "parts" / name)
        assert part.n_obs == 289 and set(part.obs["Metadata_TableNumber"]) == {name[:-5]}
        np.testing.assert_array_equal(part.X, whole.X[whole.obs["Metadata_TableNumber"]
                                                      == name[:-5]])
    report = celltable.validate(parts.dest_path)
    assert report.ok and len(report.tables) == 4  # the folder's files, then each store
    (tmp_path / "parts" / "plate_b.zarr" / "obs").rename(tmp_path / "obs")
    with pytest.raises(celltable.CelltableError):
        celltable.validate(parts.dest_path)


def test_float32_stores_x_as_float32(tmp_path):
    opts = celltable.ConversionOptions(float32=True)
    parquet = celltable.convert(EXAMPLE_HUMAN, tmp_path / "o.parquet", options=opts).dest_path
    adata = _read(celltable.convert(EXAMPLE_HUMAN, tmp_path / "o.zarr", options=opts).dest_path)
    _against_parquet(adata, parquet, float32=True)


@pytest.mark.parametrize("source", [NF1_SQLITE, CYTOMINER, IN_CARTA, DEEPPROFILER],
                         ids=["cellprofiler-sqlite", "cytominer-database", "in-carta",
                              "deepprofiler"])
def test_every_source_format_writes_anndata(tmp_path, source):
    parquet = celltable.convert(source, tmp_path / "o.parquet").dest_path
    result = celltable.convert(source, tmp_path / "o.h5ad")
    adata = _read(result.dest_path)
    assert adata.n_obs == result.rows_out > 0 and adata.n_vars > 0
    _against_parquet(adata, parquet)
    assert celltable.validate(result.dest_path).ok


def test_deepprofiler_features_are_the_embedding(tmp_path):
    adata = _read(celltable.convert(DEEPPROFILER, tmp_path / "o.h5ad").dest_path)
    group = adata.var["feature_group"].iloc[0]
    assert set(adata.var["feature_group"]) == {group}
    assert list(adata.var_names) == [f"{group}_{i}" for i in range(adata.n_vars)]
    assert all(n.startswith(("Metadata_", "Location_")) for n in adata.obs.columns)


def test_no_join_writes_one_file_per_table(tmp_path):
    result = celltable.convert(EXAMPLE_HUMAN, tmp_path / "tables", join=False, format="h5ad")
    files = sorted(p.name for p in (tmp_path / "tables").iterdir())
    assert files == ["_celltable_manifest.json", "cells.h5ad", "cytoplasm.h5ad", "image.h5ad",
                     "nuclei.h5ad"]
    image = _read(tmp_path / "tables" / "image.h5ad")
    assert image.n_vars == 0 and image.n_obs == 1  # image columns are obs, not features
    cells = _read(tmp_path / "tables" / "cells.h5ad")
    assert set(cells.var["compartment"]) == {"Cells"}
    assert celltable.validate(result.dest_path).ok


def test_join_sql_output_gets_roles_from_the_names(tmp_path):
    sql = ("SELECT c.ImageNumber AS Metadata_ImageNumber, c.ObjectNumber AS "
           "Metadata_ObjectNumber, c.AreaShape_Area AS Cells_AreaShape_Area FROM Cells c")
    result = celltable.convert(EXAMPLE_HUMAN, tmp_path / "o.h5ad",
                               options=celltable.ConversionOptions(join_sql=sql))
    adata = _read(result.dest_path)
    assert list(adata.var_names) == ["Cells_AreaShape_Area"]
    assert "Metadata_ObjectNumber" in adata.obs.columns
    assert celltable.validate(result.dest_path).ok


def test_validate_finds_a_changed_key_in_an_h5ad(tmp_path):
    path = celltable.convert(EXAMPLE_HUMAN, tmp_path / "o.h5ad").dest_path
    with h5py.File(path, "r+") as f:
        f["obs/Metadata_ObjectNumber"][0] += 1000
    report = celltable.validate(path)
    assert not report.ok
    failed = [c for c in report.tables[0].checks if c.ok is False]
    assert failed[0].name == "key digest"
    assert "Metadata_ObjectNumber" in " ".join(c.detail for c in failed[1:])


def test_pycytominer_load_profiles_reads_the_h5ad(tmp_path):
    load = pytest.importorskip("pycytominer.cyto_utils.load")
    parquet = celltable.convert(EXAMPLE_HUMAN, tmp_path / "o.parquet").dest_path
    path = celltable.convert(EXAMPLE_HUMAN, tmp_path / "o.h5ad").dest_path
    frame = load.load_profiles(path)
    expected = pq.read_table(parquet).to_pandas()
    assert len(frame) == 289 and sorted(frame.columns) == sorted(expected.columns)
    np.testing.assert_array_equal(frame["Cells_AreaShape_Area"], expected["Cells_AreaShape_Area"])


# choosing the format -----------------------------------------------------------------------


def test_the_format_follows_dest_or_is_asked_for(tmp_path):
    runner = CliRunner()
    out = runner.invoke(app, ["convert", str(EXAMPLE_HUMAN), str(tmp_path / "a.h5ad"), "-q"])
    assert out.exit_code == 0, out.output
    assert h5py.is_hdf5(tmp_path / "a.h5ad")
    out = runner.invoke(app, ["convert", str(EXAMPLE_HUMAN), str(tmp_path / "b"), "--format",
                              "zarr", "-q"])
    assert out.exit_code == 0, out.output
    assert ad.read_zarr(tmp_path / "b").n_obs == 289
    assert celltable.validate(tmp_path / "b").ok
    result = celltable.convert(EXAMPLE_HUMAN, tmp_path / "c", dest_datatype="anndata_h5ad")
    assert _read(result.dest_path).n_obs == 289
    assert runner.invoke(app, ["validate", str(tmp_path / "a.h5ad")]).exit_code == 0


@pytest.mark.parametrize(("dest", "args", "words"), [
    ("o.csv", [], "names no output format"),
    ("o.parquet", ["--format", "h5ad"], "names the parquet format"),
    ("o.h5ad", ["--format", "anndata_zarr"], "names the h5ad format"),
    ("o", ["--format", "feather"], "not one celltable writes"),
])
def test_a_format_that_cannot_be_chosen_is_a_named_error(tmp_path, dest, args, words):
    out = CliRunner().invoke(app, ["convert", str(EXAMPLE_HUMAN), str(tmp_path / dest), *args])
    assert out.exit_code == 1 and words in out.output
    assert out.output.count("\n") == 1  # one line
    assert not (tmp_path / dest).exists()
    with pytest.raises(OutputFormatError, match=words):
        celltable.convert(EXAMPLE_HUMAN, tmp_path / dest,
                          format=args[1] if args else None)


def test_format_and_dest_datatype_must_agree(tmp_path):
    with pytest.raises(OutputFormatError, match="disagree"):
        celltable.convert(EXAMPLE_HUMAN, tmp_path / "o", format="h5ad", dest_datatype="parquet")


def test_without_the_extra_a_named_error_names_it(tmp_path, monkeypatch):
    for name in [m for m in sys.modules if m.startswith(("anndata", "celltable.adapters.anndata"))]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "anndata", None)  # import anndata raises ImportError
    with pytest.raises(MissingExtraError, match=r'pip install "celltable\[anndata\]"'):
        celltable.convert(EXAMPLE_HUMAN, tmp_path / "o.h5ad")
    assert not (tmp_path / "o.h5ad").exists()


def test_validate_names_what_is_wrong_with_a_file_that_is_not_celltables(tmp_path):
    (tmp_path / "text.h5ad").write_text("not hdf5")
    with pytest.raises(celltable.CelltableError, match="not a readable AnnData"):
        celltable.validate(tmp_path / "text.h5ad")
    ad.AnnData(np.zeros((2, 1))).write_h5ad(tmp_path / "other.h5ad")
    with pytest.raises(celltable.CelltableError, match=r"no celltable\.provenance"):
        celltable.validate(tmp_path / "other.h5ad")


def test_validate_names_a_changed_feature_value(tmp_path):
    path = celltable.convert(EXAMPLE_HUMAN, tmp_path / "o.h5ad").dest_path
    with h5py.File(path, "r+") as f:
        name = f["var/_index"][5].decode()
        f["X"][3, 5] += 1.0
    report = celltable.validate(path)
    failed = [c for c in report.tables[0].checks if c.ok is False]
    assert failed and name in " ".join(c.detail for c in failed)
