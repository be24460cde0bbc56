"""Every output format under plate tasks (an executor running tasks in other processes): each
plate task writes its own AnnData file or store, or its warehouse data file, and the tables
are those of the threads run. Most tests run the plate tasks in this process through a runner
that pickles every task and result as a process executor would (no worker start-up); the
cloud DEST runs on the local S3 test server."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import celltable
from celltable.application.convert import convert
from celltable.application.warehouse import WarehouseRequest, convert_to_warehouse
from celltable.bootstrap import bootstrap, local_destination, warehouse_adapters
from celltable.domain.errors import BadSourceFilesError
from celltable.domain.model import ConversionOptions, ConversionRequest
from celltable.domain.presets import get_preset
from celltable.domain.warehouse import IcebergOptions
from tests.e2e.test_bad_files import CYTOMINER
from tests.integration.test_cloud import OUT, _keys, s3, s3_endpoint  # noqa: F401 (fixtures)
from tests.integration.test_plate_tasks import PicklingRunner

ad = pytest.importorskip("anndata")  # the [anndata] extra, installed by CI
pytest.importorskip("pyiceberg")  # the [iceberg] extra

ANNDATA = ("h5ad", "zarr")
MANIFEST = "_celltable_manifest.json"


def by_plate(source, dest, fmt=None, preset="cellprofiler_sqlite", runner=None, cache=None,
             **options):
    """Convert as under a process executor (plate tasks built from a recipe), into ``fmt``."""
    folder = None if fmt == "iceberg" else "plate"  # a warehouse: its plates' data files
    opts = ConversionOptions(**{"partition_by": folder, "local_cache_dir": cache, **options})
    request = ConversionRequest(str(source), str(dest), get_preset(preset), opts)
    runner = runner or PicklingRunner()
    with bootstrap(runner=runner, source_path=str(source), dest_path=str(dest),
                   output_format=fmt, local_cache_dir=cache) as services:
        assert services.worker_recipe is not None  # plate tasks, not chunks sent back here
        if services.output_format.warehouse:
            warehouse, cropper = warehouse_adapters(str(dest))
            reports, services = services.destination, replace(
                services, destination=local_destination())
            return convert_to_warehouse(WarehouseRequest(request, IcebergOptions()), services,
                                        warehouse, cropper, reports)
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
    local = celltable.convert(two_nf1_plates, tmp_path / "local", preset="cellprofiler_sqlite",
                              format=fmt, options=ConversionOptions(partition_by="plate"))
    cache = str(tmp_path / "cache")
    one = f"s3://{OUT}/one.{fmt}"
    celltable.convert(two_nf1_plates / "plate_1.sqlite", one, preset="cellprofiler_sqlite",
                      options=ConversionOptions(local_cache_dir=cache))
    threads = celltable.convert(two_nf1_plates, f"s3://{OUT}/threads", format=fmt,
                                preset="cellprofiler_sqlite",
                                options=ConversionOptions(partition_by="plate",
                                                          local_cache_dir=cache))
    tasks = by_plate(two_nf1_plates, f"s3://{OUT}/tasks", fmt, cache=cache)
    assert threads.rows_out == tasks.rows_out == local.rows_out
    keys = _keys(s3, OUT)
    for prefix in ("threads", "tasks"):
        assert f"{prefix}/{MANIFEST}" in keys
        assert (json.loads(s3.get_object(Bucket=OUT, Key=f"{prefix}/{MANIFEST}")["Body"].read())
                == json.loads((tmp_path / "local" / MANIFEST).read_text()))
    assert not [k for k in keys if ".celltable-" in k]  # nothing staged is left in the bucket
    for prefix, name in (("threads", "plate_1.sqlite"), ("tasks", "plate_2.sqlite"),
                         ("one", "")):
        folder = tmp_path / "back" / prefix
        for key in (k for k in keys if k.startswith(f"{prefix}/") or k.startswith(f"{prefix}.")):
            target = folder / key
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(s3.get_object(Bucket=OUT, Key=key)["Body"].read())
        path = folder / (f"{prefix}/{name}.{fmt}" if name else f"one.{fmt}")
        assert_same_anndata(_read(path), _read(tmp_path / "local" / f"{name or 'plate_1.sqlite'}.{fmt}"))
