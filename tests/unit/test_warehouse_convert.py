"""The warehouse use case on fakes: what is committed, in which order, and what a failure
leaves."""

from __future__ import annotations

import pytest

from celltable.application.convert import Services
from celltable.application.warehouse import WarehouseRequest, convert_to_warehouse
from celltable.domain.errors import ImageFileError, WarehouseError
from celltable.domain.model import ConversionOptions, ConversionRequest
from celltable.domain.presets import get_preset
from celltable.domain.warehouse import IcebergOptions, ImageOptions
from tests.fakes import (
    FakeCropper,
    FakeDestination,
    FakeEngine,
    FakeSource,
    FakeWarehouse,
    FakeWriter,
    SyncRunner,
)

PRESET = get_preset("cellprofiler_csv")
BOX = {"AreaShape_BoundingBoxMinimum_X": 0, "AreaShape_BoundingBoxMaximum_X": 4,
       "AreaShape_BoundingBoxMinimum_Y": 1, "AreaShape_BoundingBoxMaximum_Y": 3}


def _plate(images=2, per_image=3):
    image = [{"ImageNumber": i, "FileName_DNA": f"{i}_dna.tif", "FileName_Overlay": f"{i}.png",
              "FileName_RNA": f"{i}_rna.tif"} for i in range(1, images + 1)]
    objects = [{"ImageNumber": i, "ObjectNumber": o} for i in range(1, images + 1)
               for o in range(1, per_image + 1)]
    cyto = [{**o, "Parent_Cells": o["ObjectNumber"], "Parent_Nuclei": o["ObjectNumber"]}
            for o in objects]
    return {"Image": image, "Cells": [{**o, **BOX} for o in objects], "Cytoplasm": cyto,
            "Nuclei": [dict(o) for o in objects]}


def _run(warehouse, cropper=None, images=None, append=False, plates=None):
    source = FakeSource(plates or {"p": _plate()})
    writer = cropper.writer if cropper is not None else FakeWriter()
    services = Services(locator=source, engine=FakeEngine(source), writer=writer,
                        destination=FakeDestination(), runner=SyncRunner(),
                        memory_budget=2**30, producer="celltable", version="test")
    cropper = cropper or FakeCropper(writer, ("1_dna.tif", "2_dna.tif", "1_rna.tif",
                                              "2_rna.tif"))
    request = WarehouseRequest(
        ConversionRequest("src", "wh", PRESET, ConversionOptions()),
        IcebergOptions(append=append, images=ImageOptions(images_dir=images)))
    return convert_to_warehouse(request, services, warehouse, cropper), cropper


def test_crops_are_committed_before_the_profiles_in_one_commit_call():
    warehouse = FakeWarehouse()
    result, cropper = _run(warehouse, images="imgs")
    [tables] = warehouse.commits
    assert [(t.namespace, t.table) for t in tables] == [("images", "image_crops"),
                                                         ("profiles", "joined_profiles")]
    assert result.crops == 2 * 3 * 2  # images x objects x TIFF channels (not the PNG)
    assert result.channels == ("DNA", "RNA")
    assert [s.image for batch in cropper.batches for s in batch] == [1, 2]  # each image once
    assert warehouse.discarded == [False]


def test_without_images_only_the_profiles_get_files():
    warehouse = FakeWarehouse()
    result, _ = _run(warehouse)
    [tables] = warehouse.commits
    assert [len(t.files) for t in tables] == [0, 1]
    assert result.crops == 0


def test_a_plate_already_in_the_warehouse_is_refused_before_converting():
    warehouse = FakeWarehouse(holds={("profiles", "joined_profiles"): ("p",)})
    with pytest.raises(WarehouseError, match="already holds plate"):
        _run(warehouse, append=True)
    assert warehouse.commits == [] and warehouse.discarded == [True]


def test_a_failed_crop_commits_nothing_and_discards_the_staging():
    warehouse = FakeWarehouse()
    writer = FakeWriter()
    broken = FakeCropper(writer, ("1_dna.tif", "2_dna.tif", "1_rna.tif", "2_rna.tif"),
                         broken=("2_rna.tif",))
    with pytest.raises(ImageFileError):
        _run(warehouse, broken, images="imgs")
    assert warehouse.commits == [] and warehouse.discarded == [True]


def test_a_missing_image_folder_fails_before_the_profiles_are_converted():
    warehouse = FakeWarehouse()
    writer = FakeWriter()
    with pytest.raises(ImageFileError, match="missing"):
        _run(warehouse, FakeCropper(writer), images="missing")
    assert writer.files == {} and warehouse.commits == []
    _run(warehouse, FakeCropper(writer), images=None)  # the same conversion without images
    assert writer.files != {}


def test_a_failed_commit_is_the_conversion_failing():
    warehouse = FakeWarehouse(fail_commit=True)
    with pytest.raises(WarehouseError, match="commit refused"):
        _run(warehouse, images="imgs")
    assert warehouse.discarded == [True]
