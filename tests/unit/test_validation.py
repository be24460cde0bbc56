from __future__ import annotations

import pytest

from celltable.domain.errors import ValidationError
from celltable.domain.model import ConversionOptions, ConversionRequest
from celltable.domain.presets import SourceFormat, get_preset
from celltable.domain.provenance import PROVENANCE_KEY, provenance
from celltable.domain.report import TableReport
from celltable.domain.schema import Column, DataType, TableSchema
from celltable.domain.sources import Plate, StagedPlate, StagedTable, TableLocation
from celltable.domain.validation import (
    FORMAT,
    Checksum,
    ColumnDigests,
    OutputScan,
    check_folder,
    compare,
    manifest_json,
    provenance_of,
    recorded_checksum,
)

COLUMNS = (Column("Metadata_TableNumber", DataType.STRING),
           Column("Metadata_ImageNumber", DataType.INT64),
           Column("Cells_AreaShape_Area", DataType.FLOAT64))
KEYS = ("Metadata_TableNumber", "Metadata_ImageNumber")
PROV = {"preset": "cellprofiler_csv", "rows_out": 5,
        "schema": [[c.name, c.type.value] for c in COLUMNS]}
SUM = Checksum(5, KEYS, "abc", (("Metadata_TableNumber", 0), ("Metadata_ImageNumber", 0),
                                ("Cells_AreaShape_Area", 1)))


def _scan(rows=5, columns=COLUMNS, checksum=SUM):
    return OutputScan("o.parquet", rows, columns, (("data-producer-version", "0.1.0"),), checksum)


def _checks(table):
    return {c.name: c.ok for c in table.checks}


def test_an_untouched_file_passes_every_check():
    table = compare(_scan(), PROV, SUM)
    assert table.ok and _checks(table) == {"rows": True, "schema": True, "null counts": True,
                                           "key digest": True, "column digests": None}
    assert (table.preset, table.producer_version, table.rows) == ("cellprofiler_csv", "0.1.0", 5)


def test_lost_rows_fail_the_row_check_with_every_count():
    read = Checksum(4, KEYS, "abc", SUM.null_counts)
    table = compare(_scan(rows=4, checksum=read), PROV, SUM)
    rows = next(c for c in table.checks if c.name == "rows")
    assert not table.ok and rows.detail == "rows differ: 5 recorded, 4 footer, 4 read"


def test_a_dropped_or_retyped_column_is_named():
    changed = (COLUMNS[0], Column("Metadata_ImageNumber", DataType.FLOAT64))
    table = compare(_scan(columns=changed), PROV, SUM)
    schema = next(c for c in table.checks if c.name == "schema")
    assert schema.ok is False
    assert "missing Cells_AreaShape_Area" in schema.detail
    assert "retyped Metadata_ImageNumber (int64 -> float64)" in schema.detail


def test_changed_values_fail_the_checksum():
    read = Checksum(5, KEYS, "abd", (*SUM.null_counts[:2], ("Cells_AreaShape_Area", 2)))
    checks = _checks(compare(_scan(checksum=read), PROV, SUM))
    assert checks["null counts"] is False and checks["key digest"] is False


def test_files_from_before_checksums_pass_what_they_can():
    old = {"rows_out": 5, "preset": "cellprofiler_csv"}
    table = compare(_scan(checksum=None), old, None)
    assert table.ok and _checks(table) == {"rows": True, "schema": None, "checksum": None,
                                           "column digests": None}


def test_a_file_without_provenance_is_not_celltables():
    with pytest.raises(ValidationError, match="not written by celltable"):
        provenance_of("x.parquet", {"pandas": "{}"})
    with pytest.raises(ValidationError, match="not JSON"):
        provenance_of("x.parquet", {"celltable.provenance": "{"})
    assert recorded_checksum("x.parquet", {}) is None


def test_a_checksum_survives_its_json():
    assert Checksum.from_json(SUM.to_json()) == SUM


DIGESTS = ColumnDigests("a", (3, 2), ("g0", "g1"), tuple((c.name, f"h-{c.name}") for c in COLUMNS))


def _with(columns: ColumnDigests):
    return OutputScan("o.parquet", 5, COLUMNS, (), SUM, columns)


def test_a_damaged_value_names_its_column_and_row_group():
    found = ColumnDigests("a", (3, 2), ("g0", "other"), (
        *DIGESTS.columns[:2], ("Cells_AreaShape_Area", "changed")))
    table = compare(_with(found), {**PROV, "format": FORMAT}, SUM, DIGESTS)
    check = next(c for c in table.checks if c.name == "column digests")
    assert check.ok is False and not table.ok
    assert check.detail == "damaged values in column(s) Cells_AreaShape_Area, in row group 1 (rows 3-4)"
    assert _checks(compare(_with(DIGESTS), PROV, SUM, DIGESTS))["column digests"] is True


def test_a_record_missing_from_a_current_file_fails_and_from_an_older_one_is_unknown():
    current = {k: v for k, v in PROV.items() if k != "schema"} | {"format": FORMAT}
    table = compare(_scan(checksum=None), current, None, None)
    assert {k: v for k, v in _checks(table).items() if k != "rows"} == {
        "schema": False, "checksum": False, "column digests": False}
    assert "always records it" in next(c for c in table.checks if c.name == "schema").detail
    older = {k: v for k, v in PROV.items() if k != "schema"}
    assert _checks(compare(_scan(checksum=None), older, None, None))["schema"] is None


def test_a_folders_files_are_checked_against_its_manifest():
    files = {"cells.parquet": "1", "nuclei.parquet": "2", "image.parquet": "3"}
    manifest = manifest_json(files)
    assert check_folder("d", manifest, files, True).ok is True
    missing = check_folder("d", manifest, {k: v for k, v in files.items() if k != "nuclei.parquet"},
                           True)
    assert missing.ok is False and "missing nuclei.parquet" in missing.detail
    swapped = check_folder("d", manifest, {**files, "cells.parquet": "2", "nuclei.parquet": "1"},
                           True)
    assert swapped.ok is False and "swapped cells.parquet, nuclei.parquet" in swapped.detail
    extra = check_folder("d", manifest, {**files, "x.parquet": "9"}, True)
    assert extra.ok is False and "not in the manifest x.parquet" in extra.detail
    assert check_folder("d", None, files, True).ok is False
    assert check_folder("d", None, files, False).ok is None


def test_the_provenance_a_file_is_written_with_is_what_validation_reads_back():
    schema = TableSchema("Cells", (Column("ImageNumber", DataType.INT64),))
    plate = Plate("p", SourceFormat.CSV, "/src/p",
                      (TableLocation("Cells", "/src/p/Cells.csv", "Cells"),))
    staged = StagedPlate(plate, "p", (StagedTable("Cells", schema, 6, ()),))
    request = ConversionRequest("/src", "/out", get_preset("cellprofiler_csv"),
                                ConversionOptions(join=False))
    report = TableReport("Cells", "/out/cells.parquet", 6, 5, len(COLUMNS), dropped=1,
                         missing=(("Cells.Parent -> Image", 1),))
    metadata = provenance(request, "celltable", "1.2.3", [staged], report, 100, COLUMNS)
    prov = provenance_of("cells.parquet", metadata)
    assert (prov["rows_in"], prov["rows_out"], prov["rows_dropped"]) == (6, 5, 1)
    assert prov["format"] == FORMAT and prov["table"] == "Cells" and prov["join"] is False
    assert prov["sources"] == [{"plate": "p", "path": "/src/p",
                                "tables": {"Cells": {"rows": 6, "columns": 1}}}]
    assert metadata["data-producer-version"] == "1.2.3" and PROVENANCE_KEY in metadata
    table = compare(_scan(), prov, SUM)
    assert _checks(table)["rows"] and _checks(table)["schema"]
    assert table.producer_version == "0.1.0"
