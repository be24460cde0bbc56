"""A plate task's record, as saved for resume, and what makes it reusable."""

from __future__ import annotations

from dataclasses import replace

import pytest

from celltable.domain.errors import BadSourceFilesError, PlateFailedError
from celltable.domain.model import ConversionOptions, ConversionRequest, PlateRows, TableReport
from celltable.domain.plates import (
    PlateOutput,
    PlateRecord,
    Surveyed,
    Unreadable,
    WrittenFile,
    plate_identity,
    readable,
    record_from_json,
    record_json,
)
from celltable.domain.presets import SourceFormat, get_preset
from celltable.domain.schema import Column, DataType
from celltable.domain.sources import (
    BAD_FILE,
    Plate,
    SourceLayout,
    StagedPlate,
    TableLocation,
)

REQUEST = ConversionRequest("src", "dest", get_preset("cellprofiler_sqlite"),
                            ConversionOptions(partition_by="plate"))
SURVEYED = Surveyed(StagedPlate(Plate("p1", SourceFormat.SQLITE, "p1.sqlite", ()), "h", ()),
                    (("p1.sqlite", "10:20"),))
OUTPUTS = (PlateOutput("joined", ("Image",), "Cytoplasm", (Column("a", DataType.INT64),), (),
                       "out/p1.parquet", 100),)
RECORD = PlateRecord(
    "p1",
    (TableReport("joined", "out/p1.parquet", 10, 9, 1, 1, (("Cytoplasm -> Cells", 1),),
                 (PlateRows("p1", 10, 9, 1, (("Cytoplasm -> Cells", 1),), null_objects=2),),
                 null_objects=2),),
    (WrittenFile("out/p1.parquet", 9, 1234, '{"sha256": "ab"}'),),
)


def test_a_saved_record_reads_back_whole_for_its_identity_only():
    identity = plate_identity(REQUEST, SURVEYED, OUTPUTS)
    text = record_json(RECORD, identity)
    assert record_from_json(text, identity) == replace(RECORD, resumed=True)
    assert record_from_json(text, "another") is None
    assert record_from_json(text[:-5], identity) is None  # cut short: not a record


def test_the_identity_changes_with_the_sources_the_columns_and_the_options():
    identity = plate_identity(REQUEST, SURVEYED, OUTPUTS)
    changed_source = replace(SURVEYED, versions=(("p1.sqlite", "10:21"),))
    wider = (replace(OUTPUTS[0], columns=(Column("a", DataType.FLOAT64),)),)
    float32 = replace(REQUEST, options=replace(REQUEST.options, float32=True))
    h5ad = (replace(OUTPUTS[0], path="out/p1.h5ad"),)  # another format into the same folder
    others = {plate_identity(REQUEST, changed_source, OUTPUTS), plate_identity(REQUEST, SURVEYED, wider),
              plate_identity(float32, SURVEYED, OUTPUTS), plate_identity(REQUEST, SURVEYED, h5ad)}
    assert identity not in others and len(others) == 4
    # where the files are written is not part of it (a resumed plate's files move)
    moved = (replace(OUTPUTS[0], path="elsewhere/p1.parquet"),)
    assert plate_identity(REQUEST, SURVEYED, moved) == identity


def _csv_plate(key: str) -> Plate:
    return Plate(key, SourceFormat.CSV, f"src/{key}",
                      tuple(TableLocation(t, f"src/{key}/{t}.csv", t) for t in ("Image", "Cells")))


LAYOUT = SourceLayout("src", tuple(_csv_plate(k) for k in ("a", "b", "c")))


def test_plates_surveys_could_not_read_are_named_together_or_left_out_with_their_files():
    bad = [Unreadable(_csv_plate("a"), "src/a/Image.csv", "cannot read it"),
           Unreadable(_csv_plate("c"), "src/c", "cannot read the plate")]
    assert readable(LAYOUT, [], skip=False) is LAYOUT
    with pytest.raises(BadSourceFilesError) as raised:
        readable(LAYOUT, bad, skip=False)
    assert [p for p, _ in raised.value.files] == ["src/a/Image.csv", "src/c"]
    with pytest.raises(PlateFailedError, match=r"'a'.*cannot read it"):
        readable(LAYOUT, bad[:1], skip=False)
    kept = readable(LAYOUT, bad, skip=True)
    assert [u.key for u in kept.plates] == ["b"]
    why = dict(zip(kept.skipped, kept.reasons, strict=True))
    assert why["src/a/Image.csv"] == BAD_FILE + "cannot read it"
    assert why["src/c"] == BAD_FILE + "cannot read the plate"
    assert "is bad" in why["src/a/Cells.csv"]  # the rest of the plate, left out with it
    with pytest.raises(BadSourceFilesError, match="nothing is left"):
        readable(replace(LAYOUT, plates=LAYOUT.plates[::2]), bad, skip=True)
