"""Output partitioned by plate: one file per plate, together the same table as one file."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import celltable


@pytest.mark.parametrize("fixture", ["two_nf1_plates", "three_example_plates"])
def test_one_file_per_plate_holds_exactly_that_plates_rows(fixture, tmp_path, request):
    source = request.getfixturevalue(fixture)
    whole = celltable.convert(source, tmp_path / "whole.parquet")
    parts = celltable.convert(source, tmp_path / "parts",
                              options=celltable.ConversionOptions(partition_by="plate"))
    files = sorted((tmp_path / "parts").glob("*.parquet"))
    assert [f.stem for f in files] == [p.replace("/", "_") for p in parts.plates]
    tables = [pq.read_table(f) for f in files]
    for plate, table in zip(parts.plates, tables, strict=True):
        assert set(table.column("Metadata_TableNumber").to_pylist()) == {plate}
    expected = pq.read_table(tmp_path / "whole.parquet")
    assert pa.concat_tables(tables).equals(expected)
    assert parts.rows_out == whole.rows_out == expected.num_rows
    assert all(r.ok for r in [celltable.validate(tmp_path / "parts")])


def test_without_a_join_each_table_is_a_folder_of_plate_files(tmp_path, three_example_plates):
    dest = tmp_path / "tables"
    result = celltable.convert(three_example_plates, dest, join=False,
                               options=celltable.ConversionOptions(partition_by="plate"))
    assert sorted(p.name for p in dest.iterdir()) == [
        "_celltable_manifest.json", "cells", "cytoplasm", "image", "nuclei"]
    assert sorted(p.name for p in (dest / "cells").iterdir()) == [
        "plate_a.parquet", "plate_b.parquet", "plate_c.parquet"]
    cells = next(t for t in result.tables if t.name == "Cells")
    assert cells.path == str(dest / "cells")
    assert sum(pq.read_metadata(f).num_rows for f in (dest / "cells").iterdir()) == cells.rows_out


def test_the_cli_writes_a_folder_and_refuses_an_unknown_partition(tmp_path, two_nf1_plates):
    from typer.testing import CliRunner

    from celltable.cli import app

    runner = CliRunner()
    done = runner.invoke(app, ["convert", str(two_nf1_plates), str(tmp_path / "o"),
                               "--partition-by", "plate", "-q"])
    assert done.exit_code == 0, done.output
    assert sorted(p.name for p in (tmp_path / "o").glob("*.parquet")) == [
        "plate_1.sqlite.parquet", "plate_2.sqlite.parquet"]
    bad = runner.invoke(app, ["convert", str(two_nf1_plates), str(tmp_path / "w"),
                              "--partition-by", "well"])
    assert bad.exit_code == 1 and "partition_by must be one of" in bad.output
    assert not (tmp_path / "w").exists()
