"""Every output format under plate tasks (an executor running tasks in other processes): each
plate task writes its own AnnData file or store, or its warehouse data file, and the tables
are those of the threads run. Most tests run the plate tasks in this process through a runner
that pickles every task and result as a process executor would (no worker start-up); the
cloud DEST runs on the local S3 test server."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

import celltable
from celltable.adapters.storage import LocalDestination
from celltable.application.convert import convert
from celltable.application.warehouse import WarehouseRequest, convert_to_warehouse
from celltable.bootstrap import Adapters, bootstrap, warehouse_adapters
from celltable.cli import app
from celltable.domain.errors import BadSourceFilesError
from celltable.domain.model import ConversionOptions, ConversionRequest
from celltable.domain.presets import get_preset
from celltable.domain.warehouse import IcebergOptions, ImageOptions
from tests.conftest import REAL_DATA
from tests.e2e.test_bad_files import CYTOMINER
from tests.integration.test_cloud import OUT, _keys, s3, s3_endpoint  # noqa: F401 (fixtures)
from tests.integration.test_plate_tasks import PicklingRunner

ad = pytest.importorskip("anndata")  # the [anndata] extra, installed by CI
pytest.importorskip("pyiceberg")  # the [iceberg] extra

ANNDATA = ("h5ad", "zarr")
MANIFEST = "_celltable_manifest.json"


def by_plate(source, dest, fmt=None, preset="cellprofiler_sqlite", runner=None, cache=None,
             iceberg=None, **options):
    """Convert as under a process executor (plate tasks built from a recipe), into ``fmt``."""
    folder = None if fmt == "iceberg" else "plate"  # a warehouse: its plates' data files
    opts = ConversionOptions(**{"partition_by": folder, "local_cache_dir": cache, "format": fmt,
                                **options})
    request = ConversionRequest(str(source), str(dest), get_preset(preset), opts)
    # a warehouse's profiles are staged on local disk (as bootstrap_warehouse does)
    staged = LocalDestination() if fmt == "iceberg" else None
    with bootstrap(str(source), str(dest), opts,
                   given=Adapters(runner=runner or PicklingRunner(),
                                  destination=staged)) as services:
        assert services.worker_recipe is not None  # plate tasks, not chunks sent back here
        if services.output_format.warehouse:
            warehouse, cropper = warehouse_adapters(str(dest))
            return convert_to_warehouse(WarehouseRequest(request, iceberg or IcebergOptions()),
                                        services, warehouse, cropper, services.destination)
        return convert(request, services)


def _read(path):
    return ad.read_zarr(path) if str(path).endswith(".zarr") else ad.read_h5ad(path)


def assert_same_anndata(found, expected):
    assert found.shape == expected.shape and found.n_obs > 0
    np.testing.assert_array_equal(found.X, expected.X)
    assert found.obs.equals(expected.obs)
    assert found.var.equals(expected.var)


@pytest.mark.parametrize("fmt", ANNDATA)
def test_plate_tasks_write_anndata_equal_to_the_threads_run(tmp_path, two_nf1_plates, fmt):
    threads = celltable.convert(two_nf1_plates, tmp_path / "threads", preset="cellprofiler_sqlite",
                                format=fmt, options=ConversionOptions(partition_by="plate"))
    runner = PicklingRunner()
    result = by_plate(two_nf1_plates, tmp_path / "tasks", fmt, runner=runner)
    assert runner.plates == ["plate_1.sqlite", "plate_2.sqlite"]  # one task each wrote them
    names = sorted(p.name for p in (tmp_path / "tasks").iterdir())
    assert names == [MANIFEST, f"plate_1.sqlite.{fmt}", f"plate_2.sqlite.{fmt}"]
    for name in names[1:]:
        assert_same_anndata(_read(tmp_path / "tasks" / name), _read(tmp_path / "threads" / name))
    # the folder's manifest, made from the tasks' records, is the one the threads run sealed
    assert (json.loads((tmp_path / "tasks" / MANIFEST).read_text())
            == json.loads((tmp_path / "threads" / MANIFEST).read_text()))
    assert result.rows_out == threads.rows_out == 484
    assert celltable.validate(tmp_path / "tasks").ok


def test_a_resumed_zarr_run_redoes_only_the_plate_not_finished(tmp_path, two_nf1_plates):
    dest = tmp_path / "o"
    for fmt in ("parquet", "zarr"):  # a plate finished in another format is not reused
        runner = PicklingRunner(("plate_2.sqlite",))
        with pytest.raises(celltable.CelltableError, match="worker lost"):
            by_plate(two_nf1_plates, dest, fmt, runner=runner, resume=True)
        assert runner.plates == ["plate_1.sqlite", "plate_2.sqlite"]
        assert not dest.exists()
    runner = PicklingRunner()
    result = by_plate(two_nf1_plates, dest, "zarr", runner=runner, resume=True)
    assert runner.plates == ["plate_2.sqlite"]  # the finished store was kept, and is published
    assert result.rows_out == 484
    assert celltable.validate(dest).ok


def test_plate_tasks_fill_a_warehouse_with_one_commit_equal_to_the_threads_run(tmp_path,
                                                                             two_nf1_plates):
    threads = celltable.convert(two_nf1_plates, tmp_path / "threads.iceberg",
                                preset="cellprofiler_sqlite")
    result = by_plate(two_nf1_plates, tmp_path / "tasks.iceberg", "iceberg")
    (state,) = result.tables
    assert (state.rows, state.snapshots) == (484, 1)
    assert result.rows_out == threads.rows_out
    keys = ["Metadata_TableNumber", "Metadata_ImageNumber", "Metadata_ObjectNumber"]
    order = [(k, "ascending") for k in keys]
    found = celltable.read(tmp_path / "tasks.iceberg").sort_by(order)
    expected = celltable.read(tmp_path / "threads.iceberg").sort_by(order)
    assert found.equals(expected)
    assert not [p for p in (tmp_path / "tasks.iceberg").iterdir() if p.name.startswith(".")]
    assert celltable.validate(tmp_path / "tasks.iceberg").ok


def test_plate_tasks_cut_the_crops_the_threads_run_cuts_and_skip_a_missing_image(tmp_path):
    plate = tmp_path / "plate_a"
    shutil.copytree(REAL_DATA / "cellprofiler" / "ExampleHuman", plate)  # its CSVs and TIFFs
    (plate / "AS_09125_050116030001_D03f00d2.tif").unlink()  # the cellbody channel
    threads = celltable.convert(plate, tmp_path / "threads", dest_datatype="iceberg",
                                preset="cellprofiler_csv", skip_bad_files=True,
                                iceberg=IcebergOptions(images=ImageOptions(str(plate))))
    result = by_plate(plate, tmp_path / "wh", "iceberg", preset="cellprofiler_csv",
                      iceberg=IcebergOptions(images=ImageOptions(str(plate))),
                      skip_bad_files=True)
    assert result.crops == threads.crops == 289 * 2
    assert result.channels == threads.channels == ("DNA", "PH3")
    assert result.skipped_images == threads.skipped_images
    assert [f for f, _ in result.skipped_images] == ["AS_09125_050116030001_D03f00d2.tif"]
    order = [(k, "ascending") for k in ("Metadata_ObjectID", "source_image_column")]
    found = celltable.read(tmp_path / "wh", "images.image_crops").sort_by(order)
    expected = celltable.read(tmp_path / "threads", "images.image_crops").sort_by(order)
    assert found.equals(expected)


def _bad_site(src: Path, site: str) -> None:
    """A byte that is not UTF-8 in the middle of a site's image table: only reading finds it."""
    image = src / site / "image.csv"
    lines = image.read_bytes().split(b"\n")
    lines[3] = lines[3].replace(b",A", b",\xc9", 1)
    image.write_bytes(b"\n".join(lines))


def _sites(tmp: Path, n: int) -> Path:
    src = tmp / "sites"
    for i in range(1, n + 1):
        shutil.copytree(CYTOMINER / str((i - 1) % 2 + 1), src / f"site{i}")
    return src


def test_plates_only_reading_finds_bad_are_named_together_or_skipped_as_on_threads(tmp_path):
    src = _sites(tmp_path, 3)
    for site in ("site1", "site3"):
        _bad_site(src, site)
    with pytest.raises(BadSourceFilesError) as raised:
        by_plate(src, tmp_path / "x", preset="cellprofiler_csv")
    assert sorted(Path(p).parent.name for p, _ in raised.value.files) == ["site1", "site3"]
    assert not (tmp_path / "x").exists()
    threads = celltable.convert(src, tmp_path / "t", preset="cellprofiler_csv", skip_bad_files=True,
                                options=ConversionOptions(partition_by="plate"))
    result = by_plate(src, tmp_path / "o", preset="cellprofiler_csv", skip_bad_files=True)
    assert result.plates == threads.plates == ("site2",)
    assert result.bad_files == threads.bad_files and len(result.bad_files) == 2
    assert result.report.skipped == threads.report.skipped


@pytest.mark.parametrize("fmt", ANNDATA)
def test_anndata_into_s3_on_threads_and_in_plate_tasks(tmp_path, two_nf1_plates, s3, fmt):  # noqa: F811
    src = two_nf1_plates
    if fmt == "zarr":  # a store is ~150 objects: one plate keeps the test short
        (src / "plate_2.sqlite").unlink()
    local = celltable.convert(src, tmp_path / "local", preset="cellprofiler_sqlite",
                              format=fmt, options=ConversionOptions(partition_by="plate"))
    cache = str(tmp_path / "cache")
    if fmt == "h5ad":  # one file, not a folder of plates
        celltable.convert(src / "plate_1.sqlite", f"s3://{OUT}/one.h5ad",
                          preset="cellprofiler_sqlite",
                          options=ConversionOptions(local_cache_dir=cache))
    threads = celltable.convert(src, f"s3://{OUT}/threads", format=fmt,
                                preset="cellprofiler_sqlite",
                                options=ConversionOptions(partition_by="plate",
                                                          local_cache_dir=cache))
    tasks = by_plate(src, f"s3://{OUT}/tasks", fmt, cache=cache)
    assert threads.rows_out == tasks.rows_out == local.rows_out
    keys = _keys(s3, OUT)
    for prefix in ("threads", "tasks"):
        assert (json.loads(s3.get_object(Bucket=OUT, Key=f"{prefix}/{MANIFEST}")["Body"].read())
                == json.loads((tmp_path / "local" / MANIFEST).read_text()))
    assert not [k for k in keys if ".celltable-" in k]  # nothing staged is left in the bucket
    back = tmp_path / "back"
    for key in keys:
        (back / key).parent.mkdir(parents=True, exist_ok=True)
        (back / key).write_bytes(s3.get_object(Bucket=OUT, Key=key)["Body"].read())
    for name in sorted(p.name for p in (tmp_path / "local").glob(f"*.{fmt}")):
        expected = _read(tmp_path / "local" / name)
        for prefix in ("threads", "tasks"):
            assert_same_anndata(_read(back / prefix / name), expected)
    if fmt == "h5ad":
        assert_same_anndata(_read(back / "one.h5ad"), _read(tmp_path / "local" / "plate_1.sqlite.h5ad"))


# under HTEX: the threads path's assertions on bad files and the Experiment table ------------


def _experiment(folder: Path, version: str, when: str) -> None:
    (folder / "Experiment.csv").write_text(
        f"Key,Value\nCellProfiler_Version,{version}\nRun_Timestamp,{when}\n")


def _messy_sites(tmp: Path) -> Path:
    """test_bad_files' messy sites (site2's Cells.csv empty, site3's Cytoplasm.csv cut short,
    site4's image.csv a header only), a fifth site with a byte only reading finds bad, and the
    Experiment tables of two runs."""
    src = _sites(tmp, 5)
    (src / "site2" / "Cells.csv").write_bytes(b"")
    cut = src / "site3" / "Cytoplasm.csv"
    cut.write_bytes(cut.read_bytes()[: cut.stat().st_size // 2])
    image = src / "site4" / "image.csv"
    image.write_text(image.read_text().splitlines()[0] + "\n")
    _bad_site(src, "site5")
    _experiment(src / "site1", "4.2.1", "2023-01-01T10:00:00")
    _experiment(src / "site4", "4.2.4", "2023-02-01T10:00:00")
    return src


def test_htex_skips_bad_files_and_keeps_the_experiment_tables_as_threads_do(tmp_path):
    src = _messy_sites(tmp_path)
    threads = celltable.convert(src, tmp_path / "threads", preset="cellprofiler_csv",
                                skip_bad_files=True,
                                options=ConversionOptions(partition_by="plate"))
    dest = tmp_path / "htex"
    said = CliRunner().invoke(app, ["convert", str(src), str(dest), "--preset", "cellprofiler_csv",
                                    "--skip-bad-files", "--partition-by", "plate",
                                    "--executor", "htex", "--workers", "2"])
    assert said.exit_code == 0, said.output
    warnings = [ln for ln in said.output.splitlines() if "warning" in ln]
    assert len(warnings) == 1  # result.bad_files, as the threads path sets it
    assert "skipped 3 bad file(s)" in warnings[0] and f"{dest}.report.json" in warnings[0]
    files = sorted(p.name for p in dest.glob("*.parquet"))
    assert files == ["site1.parquet", "site4.parquet"]
    assert sum(pq.read_metadata(dest / f).num_rows for f in files) == 40
    report = json.loads(Path(f"{dest}.report.json").read_text())
    reasons = {s["path"]: s["reason"] for s in report["files"]["skipped"]}
    assert reasons["site2/Cells.csv"] == "bad file: empty file (0 bytes)"
    assert reasons["site3/Cytoplasm.csv"].startswith("bad file: cut short")
    assert reasons["site5/image.csv"].startswith("bad file: cannot read")
    for other in ("site2/Cytoplasm.csv", "site3/Cells.csv", "site5/Cells.csv"):
        assert "skipped" in reasons[other] and "is bad" in reasons[other]
    assert "Experiment table" in reasons["site1/Experiment.csv"]
    expected = json.loads(Path(f"{tmp_path / 'threads'}.report.json").read_text())
    assert report["files"]["skipped"] == expected["files"]["skipped"]
    assert [s.path for s in threads.bad_files] == [
        str(src / p) for p in ("site2/Cells.csv", "site3/Cytoplasm.csv", "site5/image.csv")]
    # the Experiment tables: in the report, and each plate's in its own file's metadata
    assert report["experiments"] == expected["experiments"]
    assert [(e["plates"], e["values"]["CellProfiler_Version"]) for e in report["experiments"]] \
        == [(["site1"], "4.2.1"), (["site4"], "4.2.4")]
    for name, version in (("site1", "4.2.1"), ("site4", "4.2.4")):
        prov = json.loads(pq.read_metadata(dest / f"{name}.parquet").metadata[
            b"celltable.provenance"])
        ((experiment),) = prov["experiments"]
        assert experiment["plates"] == [name]
        assert experiment["values"]["CellProfiler_Version"] == version
