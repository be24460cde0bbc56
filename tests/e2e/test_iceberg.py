"""Iceberg warehouses: ExampleHuman's profiles and image crops, read back by celltable, pyiceberg
and pycytominer; appends, refusals and failures that leave every table as it was."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import tifffile
from pycytominer.cyto_utils.load import load_profiles
from pyiceberg.catalog.sql import SqlCatalog
from typer.testing import CliRunner

import celltable
from celltable import IcebergOptions, ImageFileError, ImageOptions, WarehouseError
from celltable.cli import app
from tests.conftest import REAL_DATA

EXAMPLE = REAL_DATA / "cellprofiler" / "ExampleHuman"
CHANNELS = ("DNA", "PH3", "cellbody")
BBOX = ("source_bbox_x_min", "source_bbox_x_max", "source_bbox_y_min", "source_bbox_y_max")


def _plate(tmp: Path, name: str) -> Path:
    """A copy of ExampleHuman (CSVs and TIFFs) under another plate name."""
    folder = tmp / name
    shutil.copytree(EXAMPLE, folder)
    return folder


def _convert(source: Path, dest: Path, images: Path | None = None, **kw):
    skip_bad_files = kw.pop("skip_bad_files", None)
    ice = IcebergOptions(append=kw.pop("append", False),
                         images=ImageOptions(images_dir=str(images) if images else None, **kw))
    return celltable.convert(source, dest, dest_datatype="iceberg", iceberg=ice,
                             preset="cellprofiler_csv", skip_bad_files=skip_bad_files)


def _catalog(dest: Path) -> SqlCatalog:
    return SqlCatalog("celltable", uri=f"sqlite:///{dest}/catalog.db", warehouse=f"file://{dest}")


def _data_files(dest: Path) -> list[Path]:
    return sorted(dest.glob("*/*/data/*"))


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory) -> Path:
    dest = tmp_path_factory.mktemp("iceberg") / "warehouse"
    _convert(EXAMPLE, dest, EXAMPLE)
    return dest


def test_example_human_gives_289_profiles_with_object_ids_and_867_crops(warehouse):
    profiles = celltable.read(warehouse)
    assert profiles.num_rows == 289
    ids = profiles.column("Metadata_ObjectID").to_pylist()
    assert len(set(ids)) == 289
    assert ids[0] == "ExampleHuman/1/1"
    crops = celltable.read(warehouse, "images.image_crops")
    assert crops.num_rows == 289 * 3
    assert set(crops.column("Metadata_ObjectID").to_pylist()) == set(ids)
    assert sorted(set(crops.column("source_image_column").to_pylist())) == sorted(
        f"Image_FileName_{c}" for c in CHANNELS)


def test_every_crop_equals_its_tiff_slice_pixel_for_pixel(warehouse):
    crops = celltable.read(warehouse, "images.image_crops")
    images = {}
    for i, row in enumerate(crops.select(["source_image_file", *BBOX]).to_pylist()):
        file = row["source_image_file"]
        image = images.setdefault(file, tifffile.imread(file))
        x0, x1, y0, y1 = (row[c] for c in BBOX)
        crop = celltable.crop_to_numpy(crops.column("ome_arrow_image")[i])
        assert crop.dtype == image.dtype
        assert crop.size > 0
        np.testing.assert_array_equal(crop, image[y0:y1, x0:x1])
    assert len(images) == 3


def test_the_crops_are_ome_arrow_structs_with_pixels_meta_and_planes(warehouse):
    data_file = next((warehouse / "images" / "image_crops" / "data").glob("*.parquet"))
    value = pq.read_table(data_file).column("ome_arrow_image")[0].as_py()
    assert value["type"] == "ome.arrow"
    meta = value["pixels_meta"]
    assert (meta["size_z"], meta["size_c"], meta["size_t"]) == (1, 1, 1)
    assert meta["channels"][0]["name"] in CHANNELS
    plane = value["planes"][0]
    assert (plane["z"], plane["t"], plane["c"]) == (0, 0, 0)
    assert len(plane["pixels"]) == meta["size_x"] * meta["size_y"]


def test_pycytominer_loads_the_289_profiles_from_the_warehouse(warehouse):
    frame = load_profiles(warehouse)
    assert len(frame) == 289
    assert "Metadata_ObjectID" in frame.columns


def test_pyiceberg_opens_the_catalog_and_scans_both_tables(warehouse):
    catalog = _catalog(warehouse)
    assert sorted(catalog.list_namespaces()) == [("images",), ("profiles",)]
    profiles = catalog.load_table("profiles.joined_profiles").scan().to_arrow()
    assert profiles.num_rows == 289
    crops = catalog.load_table("images.image_crops").scan(
        row_filter="Metadata_ObjectNumber == 7").to_arrow()
    assert crops.num_rows == 3
    pixels = celltable.crop_to_numpy(crops.column("ome_arrow_image")[0])
    image = tifffile.imread(crops.column("source_image_file")[0].as_py())
    x0, x1, y0, y1 = (crops.column(c)[0].as_py() for c in BBOX)
    np.testing.assert_array_equal(pixels, image[y0:y1, x0:x1])


def test_read_pushes_the_filter_and_columns_into_the_scan(warehouse):
    rows = celltable.read(warehouse, "profiles.joined_profiles",
                          columns=["Metadata_ObjectNumber", "Cells_AreaShape_Area"],
                          filter="Metadata_ObjectNumber < 10")
    assert rows.column_names == ["Metadata_ObjectNumber", "Cells_AreaShape_Area"]
    assert sorted(rows.column("Metadata_ObjectNumber").to_pylist()) == list(range(1, 10))


def test_inspect_describes_a_warehouse(warehouse):
    result = CliRunner().invoke(app, ["inspect", str(warehouse), "--json"])
    assert result.exit_code == 0, result.output
    tables = {t["table"]: t for t in json.loads(result.output)["tables"]}
    assert tables["profiles.joined_profiles"]["rows"] == 289
    assert tables["images.image_crops"]["rows"] == 867
    assert tables["images.image_crops"]["snapshots"] == 1


def test_an_append_adds_a_plate_in_one_snapshot_rows_add_up_and_a_plate_again_is_refused(tmp_path):
    dest = tmp_path / "wh"
    _convert(_plate(tmp_path, "plate_a"), dest, tmp_path / "plate_a")
    result = _convert(_plate(tmp_path, "plate_b"), dest, tmp_path / "plate_b", append=True)
    states = {f"{t.namespace}.{t.table}": t for t in result.tables}
    assert states["profiles.joined_profiles"].rows == 578
    assert states["profiles.joined_profiles"].snapshots == 2
    assert states["images.image_crops"].rows == 1734
    assert states["images.image_crops"].snapshots == 2
    plates = celltable.read(dest, columns=["Metadata_TableNumber"]).column(0).to_pylist()
    assert {p: plates.count(p) for p in set(plates)} == {"plate_a": 289, "plate_b": 289}
    assert len(load_profiles(dest)) == 578
    files = _data_files(dest)
    with pytest.raises(WarehouseError, match="plate_a"):  # already there: refused
        _convert(tmp_path / "plate_a", dest, tmp_path / "plate_a", append=True)
    assert _data_files(dest) == files
    assert [t.snapshots for t in celltable.describe_warehouse(dest)] == [2, 2]


def test_an_append_with_new_columns_evolves_the_schema(tmp_path):
    dest = tmp_path / "wh"
    _convert(_plate(tmp_path, "plate_a"), dest)
    wider = _plate(tmp_path, "plate_b")
    cells = wider / "Cells.csv"
    lines = cells.read_text().splitlines()
    cells.write_text("\n".join([lines[0] + ",Extra_Feature"]
                               + [ln + ",1.5" for ln in lines[1:]]) + "\n")
    _convert(wider, dest, append=True)
    rows = celltable.read(dest, columns=["Metadata_TableNumber", "Cells_Extra_Feature"])
    by_plate = {}
    for plate, value in zip(*rows.to_pydict().values(), strict=True):
        by_plate.setdefault(plate, set()).add(value)
    assert by_plate == {"plate_a": {None}, "plate_b": {1.5}}


def test_a_failing_append_leaves_every_table_at_its_previous_snapshot(tmp_path):
    dest = tmp_path / "wh"
    _convert(_plate(tmp_path, "plate_a"), dest, tmp_path / "plate_a")
    before = celltable.describe_warehouse(dest)
    files = _data_files(dest)
    broken = _plate(tmp_path, "plate_b")
    (broken / "AS_09125_050116030001_D03f00d1.tif").unlink()  # the PH3 channel
    with pytest.raises(ImageFileError, match=r"D03f00d1\.tif"):
        _convert(broken, dest, broken, append=True)
    assert celltable.describe_warehouse(dest) == before
    assert _data_files(dest) == files
    assert not [p for p in dest.iterdir() if p.name.startswith(".")]
    assert len(load_profiles(dest)) == 289


def test_a_failed_profiles_commit_sets_the_crops_table_back(tmp_path, monkeypatch):
    from celltable.adapters import iceberg

    dest = tmp_path / "wh"
    _convert(_plate(tmp_path, "plate_a"), dest, tmp_path / "plate_a")
    before = celltable.describe_warehouse(dest)
    real_add = iceberg.IcebergWarehouse._add

    def add(self, tf, *args):
        if tf.namespace == "profiles":
            raise WarehouseError("commit refused")
        return real_add(self, tf, *args)

    monkeypatch.setattr(iceberg.IcebergWarehouse, "_add", add)
    with pytest.raises(WarehouseError, match="commit refused"):
        _convert(_plate(tmp_path, "plate_b"), dest, tmp_path / "plate_b", append=True)
    after = {(t.namespace, t.table): t for t in celltable.describe_warehouse(dest)}
    for t in before:  # same current snapshot and rows (the images table has one more in history)
        now = after[(t.namespace, t.table)]
        assert (now.rows, now.snapshot_id) == (t.rows, t.snapshot_id)
    assert celltable.read(dest, "images.image_crops").num_rows == 867
    assert not list((dest / "profiles" / "joined_profiles" / "data").glob("*"))[1:]


def test_skip_bad_files_leaves_a_missing_image_out_and_reports_it(tmp_path):
    plate = _plate(tmp_path, "plate_a")
    (plate / "AS_09125_050116030001_D03f00d2.tif").unlink()  # the cellbody channel
    result = _convert(plate, tmp_path / "wh", plate, skip_bad_files=True)
    assert result.crops == 289 * 2
    assert result.channels == ("DNA", "PH3")
    assert [f for f, _ in result.skipped_images] == ["AS_09125_050116030001_D03f00d2.tif"]
    report = json.loads(Path(f"{tmp_path / 'wh'}.report.json").read_text())
    assert report["warehouse"]["image_files_skipped"][0]["file"].endswith("d2.tif")
    assert report["warehouse"]["crops"] == 578


def test_masks_are_cropped_like_the_images(tmp_path):
    plate = _plate(tmp_path, "plate_a")
    masks = tmp_path / "masks"
    masks.mkdir()
    label = np.arange(512 * 512, dtype=np.uint16).reshape(512, 512)
    tifffile.imwrite(masks / "AS_09125_050116030001_D03f00d0_nuclei.tif", label)
    _convert(plate, tmp_path / "wh", plate, masks_dir=str(masks))
    crops = celltable.read(tmp_path / "wh", "images.image_crops",
                           filter="Metadata_ObjectNumber == 3")
    x0, x1, y0, y1 = (crops.column(c)[0].as_py() for c in BBOX)
    for i in range(crops.num_rows):
        mask = celltable.crop_to_numpy(crops.column("ome_arrow_mask")[i])
        np.testing.assert_array_equal(mask, label[y0:y1, x0:x1])
    assert crops.column("ome_arrow_outline").null_count == crops.num_rows


def test_the_command_line_converts_appends_and_refuses_an_existing_warehouse(tmp_path):
    runner = CliRunner()
    dest = tmp_path / "wh"
    a, b = _plate(tmp_path, "plate_a"), _plate(tmp_path, "plate_b")
    ok = runner.invoke(app, ["convert", str(a), str(dest), "--format", "iceberg",
                             "--images", str(a), "-q"])
    assert ok.exit_code == 0, ok.output
    assert "867 crops" in ok.output
    again = runner.invoke(app, ["convert", str(b), str(dest), "--images", str(b), "-q"])
    assert again.exit_code == 1 and "--append" in again.output
    more = runner.invoke(app, ["convert", str(b), str(dest), "--append", "-q"])
    assert more.exit_code == 0, more.output
    states = {f"{t.namespace}.{t.table}": t.rows for t in celltable.describe_warehouse(dest)}
    assert states == {"profiles.joined_profiles": 578, "images.image_crops": 867}


def test_validate_checks_the_profiles_data_files_against_their_checksums(warehouse):
    report = celltable.validate(warehouse)
    assert report.ok
    assert [t.rows for t in report.tables] == [289]


def test_a_users_catalog_takes_the_commits_and_refuses_a_second_conversion_without_append(
        tmp_path):
    catalog_db = tmp_path / "catalogs" / "mine.db"
    catalog_db.parent.mkdir()
    uri = f"sqlite:///{catalog_db}"
    ice = IcebergOptions(catalog_uri=uri)
    result = celltable.convert(EXAMPLE, tmp_path / "tables", dest_datatype="iceberg",
                               iceberg=ice, preset="cellprofiler_csv")
    assert [(t.table, t.rows) for t in result.tables] == [("joined_profiles", 289)]
    assert not (tmp_path / "tables" / "catalog.db").exists()
    catalog = SqlCatalog("celltable", uri=uri)
    assert catalog.load_table("profiles.joined_profiles").scan().to_arrow().num_rows == 289
    with pytest.raises(WarehouseError, match="--append"):
        celltable.convert(EXAMPLE, tmp_path / "tables", dest_datatype="iceberg", iceberg=ice,
                          preset="cellprofiler_csv")
