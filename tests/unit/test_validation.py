from __future__ import annotations

import pytest

from celltable.domain.errors import ValidationError
from celltable.domain.schema import Column, DataType
from celltable.domain.validation import (
    Checksum,
    OutputScan,
    compare,
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
                                           "key digest": True}
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
    assert table.ok and _checks(table) == {"rows": True, "schema": None, "checksum": None}


def test_a_file_without_provenance_is_not_celltables():
    with pytest.raises(ValidationError, match="not written by celltable"):
        provenance_of("x.parquet", {"pandas": "{}"})
    with pytest.raises(ValidationError, match="not JSON"):
        provenance_of("x.parquet", {"celltable.provenance": "{"})
    assert recorded_checksum("x.parquet", {}) is None


def test_a_checksum_survives_its_json():
    assert Checksum.from_json(SUM.to_json()) == SUM
