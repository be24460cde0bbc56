"""The warehouse's pure rules: image channels, bounding boxes, finding image files, batches."""

from __future__ import annotations

import pytest

from celltable.domain.errors import ImageFileError, InvalidOptionError, SchemaError
from celltable.domain.warehouse import (
    FileIndex,
    ImageOptions,
    ImageRows,
    ImageSet,
    batches,
    channels,
    check_bbox_columns,
    companion,
    image_sets,
    plates_already_there,
)


def test_channels_pair_file_names_with_their_path_names():
    found = channels(["Image_FileName_DNA", "Image_PathName_DNA", "Image_FileName_RNA", "x"])
    assert [(c.name, c.file_column, c.path_column) for c in found] == [
        ("DNA", "Image_FileName_DNA", "Image_PathName_DNA"),
        ("RNA", "Image_FileName_RNA", None),
    ]


def test_bounding_box_columns_take_the_compartment_prefix_and_must_exist():
    opts = ImageOptions(images_dir="i", bbox_compartment="Nuclei")
    cols = [f"Nuclei_AreaShape_BoundingBox{m}_{a}" for m in ("Minimum", "Maximum")
            for a in "XY"]
    assert check_bbox_columns(opts, cols) == (
        "Nuclei_AreaShape_BoundingBoxMinimum_X", "Nuclei_AreaShape_BoundingBoxMaximum_X",
        "Nuclei_AreaShape_BoundingBoxMinimum_Y", "Nuclei_AreaShape_BoundingBoxMaximum_Y")
    with pytest.raises(SchemaError, match="--bbox-compartment"):
        check_bbox_columns(ImageOptions(images_dir="i"), cols)


def test_image_options_refuse_masks_without_images_and_a_short_bounding_box():
    with pytest.raises(InvalidOptionError, match="--images"):
        ImageOptions(masks_dir="m")
    with pytest.raises(InvalidOptionError, match="four"):
        ImageOptions(bbox_columns=("a", "b"))  # type: ignore[arg-type]


def test_a_file_name_is_found_once_and_told_apart_by_its_path_name():
    index = FileIndex("/imgs", {"a.tif": ("p1/a.tif",), "b.tif": ("p1/x/b.tif", "p2/x/b.tif")})
    assert index.find("a.tif") == "/imgs/p1/a.tif"
    assert index.find("b.tif", "/data/p2/x") == "/imgs/p2/x/b.tif"
    with pytest.raises(ImageFileError, match="ambiguous"):
        index.find("b.tif", "/elsewhere")
    with pytest.raises(ImageFileError, match="not under /imgs"):
        index.find("c.tif")


def test_a_mask_is_the_file_of_the_same_name_or_the_one_starting_with_its_stem():
    same = FileIndex("/m", {"a.tif": ("a.tif",)})
    assert companion(same, "/imgs/a.tif") == "/m/a.tif"
    prefixed = FileIndex("/m", {"a_nuclei.tif": ("a_nuclei.tif",), "b_nuclei.tif": ("b.tif",)})
    assert companion(prefixed, "/imgs/a.tif") == "/m/a_nuclei.tif"
    assert companion(prefixed, "/imgs/c.tif") is None
    two = FileIndex("/m", {"a_1.tif": ("a_1.tif",), "a_2.tif": ("a_2.tif",)})
    with pytest.raises(ImageFileError, match="several"):
        companion(two, "/imgs/a.tif")


def test_image_sets_leave_out_non_tiff_channels_and_with_skip_record_missing_files():
    index = FileIndex("/i", {"d.tif": ("d.tif",)})
    rows = ImageRows("p", 1, (("DNA", "d.tif", None), ("Overlay", "o.png", None),
                              ("RNA", "r.tif", None)), (1, 2), ((0, 1, 0, 1), (1, 2, 1, 2)))
    with pytest.raises(ImageFileError):
        image_sets(rows, index.find, None, None, False, [])
    skipped: list[tuple[str, str]] = []
    found = image_sets(rows, index.find, None, None, True, skipped)
    assert found is not None and found.files == (("DNA", "/i/d.tif"),)
    assert [f for f, _ in skipped] == ["r.tif"]


def test_batches_hold_about_the_crops_asked_for_and_lose_no_image():
    sets = [ImageSet("p", i, (("DNA", f"{i}.tif"),), tuple(range(10)), ((0, 1, 0, 1),) * 10)
            for i in range(25)]
    got = list(batches(sets, 30))
    assert [len(b) for b in got] == [3] * 8 + [1]
    assert [s.image for b in got for s in b] == list(range(25))
    assert list(batches([], 30)) == []


def test_plates_already_there_keeps_the_conversion_order():
    assert plates_already_there({"b", "c"}, ["a", "b", "c"]) == ("b", "c")

