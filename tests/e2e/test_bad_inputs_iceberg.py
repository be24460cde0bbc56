"""The bad-input corpus of Iceberg warehouses: each case a named error (one line on the command
line, exit code 1) and DEST as it was: nothing at a new DEST, every table of an existing
warehouse at its snapshot."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
from typer.testing import CliRunner

import celltable
from celltable import (
    ConversionOptions,
    DestinationError,
    IcebergOptions,
    ImageFileError,
    ImageOptions,
    InvalidOptionError,
    MissingExtraError,
    SchemaError,
    WarehouseError,
)
from celltable.cli import app
from tests.conftest import REAL_DATA

EXAMPLE = REAL_DATA / "cellprofiler" / "ExampleHuman"
DNA = "AS_09125_050116030001_D03f00d0.tif"


def _convert(source: Path, dest: Path, options: ConversionOptions | None = None, **kw):
    append, skip_bad_files = kw.pop("append", False), kw.pop("skip_bad_files", None)
    return celltable.convert(source, dest, dest_datatype="iceberg", preset="cellprofiler_csv",
                             options=options, skip_bad_files=skip_bad_files,
                             iceberg=IcebergOptions(append=append, images=ImageOptions(**kw)))


def _plate(tmp: Path) -> Path:
    shutil.copytree(EXAMPLE, tmp / "plate")
    return tmp / "plate"


def _nothing_at(dest: Path) -> None:
    assert not dest.exists()
    assert not [p for p in dest.parent.iterdir() if p.name.startswith(".")]


def test_a_missing_image_folder_is_named_before_anything_is_converted(tmp_path):
    dest = tmp_path / "wh"
    with pytest.raises(ImageFileError, match="does not exist"):
        _convert(EXAMPLE, dest, images_dir=str(tmp_path / "nowhere"))
    _nothing_at(dest)


def test_an_ambiguous_image_file_is_named(tmp_path):
    images = tmp_path / "images"
    for sub in ("a", "b"):
        shutil.copytree(EXAMPLE, images / sub)
    dest = tmp_path / "wh"
    with pytest.raises(ImageFileError, match="ambiguous"):
        _convert(EXAMPLE, dest, images_dir=str(images))
    _nothing_at(dest)


def test_a_file_that_is_not_a_tiff_is_named(tmp_path):
    plate = _plate(tmp_path)
    (plate / DNA).write_bytes(b"not a tiff")
    dest = tmp_path / "wh"
    with pytest.raises(ImageFileError, match="not a readable TIFF"):
        _convert(plate, dest, images_dir=str(plate))
    _nothing_at(dest)


def test_floating_point_pixels_are_refused_not_rounded(tmp_path):
    plate = _plate(tmp_path)
    tifffile.imwrite(plate / DNA, np.full((512, 512), 0.5, np.float32))
    dest = tmp_path / "wh"
    with pytest.raises(ImageFileError, match="16-bit"):
        _convert(plate, dest, images_dir=str(plate))
    _nothing_at(dest)


def test_a_compartment_without_bounding_boxes_is_named(tmp_path):
    dest = tmp_path / "wh"
    with pytest.raises(SchemaError, match="--bbox-compartment"):
        _convert(EXAMPLE, dest, images_dir=str(EXAMPLE), bbox_compartment="Organelles")
    _nothing_at(dest)


def test_options_a_warehouse_cannot_hold_are_refused(tmp_path):
    dest = tmp_path / "wh"
    with pytest.raises(InvalidOptionError, match="--no-join"):
        _convert(EXAMPLE, dest, ConversionOptions(join=False))
    with pytest.raises(InvalidOptionError, match="--resume"):
        _convert(EXAMPLE, dest, ConversionOptions(resume=True))
    with pytest.raises(InvalidOptionError, match="--images"):
        ImageOptions(masks_dir=str(EXAMPLE))
    _nothing_at(dest)


def test_append_to_no_warehouse_and_a_file_or_folder_at_dest_are_refused(tmp_path):
    with pytest.raises(WarehouseError, match="without --append"):
        _convert(EXAMPLE, tmp_path / "wh", append=True)
    _nothing_at(tmp_path / "wh")
    file = tmp_path / "file"
    file.write_text("x")
    with pytest.raises(DestinationError, match="not a folder"):
        _convert(EXAMPLE, file)
    folder = tmp_path / "folder"
    (folder / "mine").mkdir(parents=True)
    with pytest.raises(DestinationError, match="not a warehouse"):
        _convert(EXAMPLE, folder)
    assert [p.name for p in folder.iterdir()] == ["mine"]


def test_reading_what_is_not_a_warehouse_is_named(tmp_path):
    with pytest.raises(WarehouseError, match="not a celltable warehouse"):
        celltable.read(tmp_path)


def test_without_the_iceberg_extra_the_error_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyiceberg", None)
    with pytest.raises(MissingExtraError, match=r"celltable\[iceberg\]"):
        _convert(EXAMPLE, tmp_path / "wh")
    _nothing_at(tmp_path / "wh")


def test_the_command_line_says_it_in_one_line(tmp_path):
    dest = tmp_path / "wh"
    result = CliRunner().invoke(app, ["convert", str(EXAMPLE), str(dest), "--format", "iceberg",
                                      "--images", str(tmp_path / "nowhere"), "-q"])
    assert result.exit_code == 1
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("celltable: error:") and "nowhere" in lines[0]
    _nothing_at(dest)


def test_with_skip_bad_files_an_unreadable_tiff_loses_only_its_own_crops(tmp_path):
    plate = _plate(tmp_path)
    (plate / DNA).write_bytes(b"not a tiff")
    result = _convert(plate, tmp_path / "wh", images_dir=str(plate), skip_bad_files=True)
    assert result.crops == 289 * 2
    assert result.channels == ("PH3", "cellbody")
    assert [Path(f).name for f, _ in result.skipped_images] == [DNA]
    columns = celltable.read(tmp_path / "wh", "images.image_crops",
                             columns=["source_image_column"]).column(0).to_pylist()
    assert sorted(set(columns)) == ["Image_FileName_PH3", "Image_FileName_cellbody"]


def test_bounding_box_columns_of_the_wrong_count_are_refused_on_the_command_line(tmp_path):
    dest = tmp_path / "wh"
    result = CliRunner().invoke(app, ["convert", str(EXAMPLE), str(dest), "--images",
                                      str(EXAMPLE), "--bbox-columns", "a,b", "-q"])
    assert result.exit_code == 1
    assert "four names" in result.output
    _nothing_at(dest)


def _two_plates(tmp: Path) -> Path:
    """plate_a: ExampleHuman without its DNA channel's TIFF; plate_b: its Cells.csv empty."""
    plates = tmp / "plates"
    for name in ("plate_a", "plate_b"):
        shutil.copytree(EXAMPLE, plates / name)
    (plates / "plate_a" / DNA).unlink()
    (plates / "plate_b" / "Cells.csv").write_bytes(b"")
    return plates


def test_one_skip_bad_files_option_skips_bad_source_files_and_bad_images_alike(tmp_path):
    plates, dest = _two_plates(tmp_path), tmp_path / "wh"
    args = ["convert", str(plates), str(dest), "--preset", "cellprofiler_csv", "--format",
            "iceberg", "--images", str(plates / "plate_a"), "-q"]
    refused = CliRunner().invoke(app, args)
    assert refused.exit_code == 1
    assert "plate_b/Cells.csv" in refused.output and "--skip-bad-files" in refused.output
    _nothing_at(dest)

    result = CliRunner().invoke(app, [*args, "--skip-bad-files"])
    assert result.exit_code == 0, result.output
    assert "skipped 1 bad file(s)" in result.output and f"{dest}.report.json" in result.output
    profiles = celltable.read(dest)
    assert set(profiles.column("Metadata_TableNumber").to_pylist()) == {"plate_a"}
    assert profiles.num_rows == 289
    assert celltable.read(dest, "images.image_crops").num_rows == 289 * 2
    report = json.loads(Path(f"{dest}.report.json").read_text())
    skipped = {s["path"]: s["reason"] for s in report["files"]["skipped"]}
    assert skipped["plate_b/Cells.csv"] == "bad file: empty file (0 bytes)"
    assert [Path(s["file"]).name for s in report["warehouse"]["image_files_skipped"]] == [DNA]


def test_a_plate_task_failing_leaves_a_new_or_grown_warehouse_as_it_was(tmp_path):
    """Under worker processes each plate's data file is written by its own task: one lost
    plate commits nothing, to a new warehouse or to one being grown."""
    from tests.e2e.test_plate_formats import by_plate
    from tests.integration.test_plate_tasks import PicklingRunner

    src = tmp_path / "plates"
    for name in ("a", "b"):
        shutil.copytree(EXAMPLE, src / name)
    dest = tmp_path / "wh"
    with pytest.raises(celltable.CelltableError, match="worker lost"):
        by_plate(src, dest, "iceberg", preset="cellprofiler_csv", runner=PicklingRunner(("b",)))
    _nothing_at(dest)
    by_plate(src / "a", dest, "iceberg", preset="cellprofiler_csv")
    before = celltable.describe_warehouse(dest)
    more = tmp_path / "more"
    for name in ("c", "d"):
        shutil.copytree(EXAMPLE, more / name)
    with pytest.raises(celltable.CelltableError, match="worker lost"):
        by_plate(more, dest, "iceberg", preset="cellprofiler_csv", runner=PicklingRunner(("d",)),
                 iceberg=IcebergOptions(append=True))
    assert celltable.describe_warehouse(dest) == before
    assert celltable.read(dest).num_rows == 289
    assert not [p for p in dest.iterdir() if p.name.startswith(".")]
