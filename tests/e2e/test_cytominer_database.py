"""cytominer-database sources on the shared data: a SQLite file holding two CellProfiler runs
(TableNumber), whose Image table mixes storage classes, and the per-site CSV layout.

Expected row counts are computed from the sources with sqlite3 and csv, not with celltable."""

from __future__ import annotations

import csv
import shutil
import sqlite3
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from structlog.testing import capture_logs

import celltable
from celltable.adapters.duckdb_engine import DuckDBEngine
from celltable.adapters.storage import LocalSourceLocator
from celltable.domain.presets import get_preset
from tests.conftest import REAL_DATA

DATA = REAL_DATA / "cytominer-database"
SQLITE = DATA / "data_a_sqlite" / "data_a.sqlite"
CSV_SITES = DATA / "data_a"
CELL_HEALTH = "cell-health-cellprofiler-to-cytominer-database"



def _joined_rows(path: Path, *, by_table_number: bool) -> int:
    """Cytoplasm rows with both parents, by sqlite3."""
    same = "{p}.TableNumber = c.TableNumber AND " if by_table_number else ""
    on = (same + "{p}.ImageNumber = c.ImageNumber AND {p}.ObjectNumber = c.Cytoplasm_Parent_{t}")
    with sqlite3.connect(path) as con:
        return con.execute(
            "SELECT count(*) FROM Cytoplasm c "
            f"JOIN Cells l ON {on.format(p='l', t='Cells')} "
            f"JOIN Nuclei n ON {on.format(p='n', t='Nuclei')}"
        ).fetchone()[0]


def _sqlite_rows(path: Path, table: str) -> int:
    with sqlite3.connect(path) as con:
        return con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


@pytest.fixture
def overlapping(tmp_path: Path) -> Path:
    """data_a.sqlite with the second run's image numbers overlapping the first's, as image
    numbers of separate CellProfiler runs do: only TableNumber tells the runs apart."""
    path = tmp_path / "src" / "runs.sqlite"
    path.parent.mkdir()
    shutil.copy(SQLITE, path)
    path.chmod(0o644)
    with sqlite3.connect(path) as con:
        (second,) = con.execute("SELECT max(TableNumber) FROM Image").fetchone()
        (low,) = con.execute("SELECT min(ImageNumber) FROM Image WHERE TableNumber = ?",
                             (second,)).fetchone()
        for table in ("Image", "Cells", "Cytoplasm", "Nuclei"):
            # its first image becomes image 2 of the first run, whose objects it shares
            con.execute(f"UPDATE {table} SET ImageNumber = ImageNumber - ? + 2 "
                        "WHERE TableNumber = ?", (low, second))
    return path


def test_the_mixed_type_image_table_converts_keeping_its_values(tmp_path):
    dest = tmp_path / "tables"
    with capture_logs() as logs:
        celltable.convert(SQLITE, dest, preset="cellprofiler_sqlite_cpg0016_jump", join=False)
    image = pq.read_table(dest / "image.parquet")
    assert image.num_rows == _sqlite_rows(SQLITE, "Image")
    values = image.column("Image_ExecutionTime_30CalculateMath").to_pylist()
    with sqlite3.connect(SQLITE) as con:
        expected = [v for (v,) in con.execute(
            "SELECT ExecutionTime_30CalculateMath FROM Image ORDER BY TableNumber, ImageNumber")]
    assert sorted(values) == pytest.approx(sorted(expected))  # widened to float, none lost
    assert image.column("Image_ExecutionTime_30CalculateMath").null_count == 0
    widened = [e for e in logs if e["event"] == "sqlite_integers_widened"]
    assert widened and "ExecutionTime_30CalculateMath" in widened[0]["columns"]


def test_a_plate_with_mixed_types_is_redone_from_a_copy(tmp_path, nf1_sqlite):
    # Read in place first (checking every value beforehand would read each plate twice); the
    # mismatch found while streaming makes the conversion redo the plate from a copy.
    with capture_logs() as logs:
        result = celltable.convert(SQLITE, tmp_path / "o.parquet",
                                   preset="cellprofiler_sqlite_cpg0016_jump")
    assert [e["plate"] for e in logs if e["event"] == "plate_copied_after_all"] == ["data_a.sqlite"]
    assert result.rows_out == _joined_rows(SQLITE, by_table_number=False)
    assert celltable.validate(result.dest_path).ok
    nf1 = get_preset("cellprofiler_sqlite")
    plate = LocalSourceLocator().discover(str(nf1_sqlite), nf1).plates[0]
    assert DuckDBEngine().stage(plate, nf1, str(tmp_path)).in_place


def test_junk_in_a_numeric_column_is_counted_and_the_column_kept(tmp_path):
    src = tmp_path / "src" / "junk.sqlite"
    src.parent.mkdir()
    shutil.copy(SQLITE, src)
    src.chmod(0o644)
    with sqlite3.connect(src) as con:
        con.execute("UPDATE Cytoplasm SET Cytoplasm_AreaShape_Area = 'n/a' WHERE rowid = 1")
        con.execute("UPDATE Cytoplasm SET Cytoplasm_AreaShape_Eccentricity = '' WHERE rowid = 2")
        areas = con.execute("SELECT count(*) FROM Cytoplasm WHERE typeof(Cytoplasm_AreaShape_Area)"
                            " = 'integer'").fetchone()[0]
    with capture_logs() as logs:
        result = celltable.convert(src, tmp_path / "o.parquet", preset=CELL_HEALTH)
    table = pq.read_table(result.dest_path)
    assert table.num_rows == _joined_rows(src, by_table_number=True)
    area = table.column("Cytoplasm_AreaShape_Area")
    assert str(area.type) == "int64" and area.num_chunks and len(area) - area.null_count == areas
    junk = {(e["column"], e["values"]) for e in logs if e["event"] == "sqlite_values_not_cast"}
    assert ("Cytoplasm_AreaShape_Area", 1) in junk
    assert ("Cytoplasm_AreaShape_Eccentricity", 1) in junk


def test_cell_health_preset_joins_within_each_table_number(tmp_path, overlapping):
    result = celltable.convert(overlapping, tmp_path / "o.parquet", preset=CELL_HEALTH)
    expected = _joined_rows(overlapping, by_table_number=True)
    assert expected == 40
    assert result.rows_out == expected == pq.read_metadata(result.dest_path).num_rows
    assert result.plates == ("runs.sqlite/1686980", "runs.sqlite/1879029464")
    table = pq.read_table(result.dest_path)
    names = table.column_names
    assert "Cytoplasm_TableNumber" not in names and "Cells_TableNumber" not in names
    per_plate = Counter(table.column("Metadata_TableNumber").to_pylist())
    assert per_plate == {"runs.sqlite/1686980": 20, "runs.sqlite/1879029464": 20}
    assert celltable.validate(result.dest_path).ok
    # Joined on the image alone, the runs' objects would pair across runs.
    assert _joined_rows(overlapping, by_table_number=False) > expected


def test_cell_health_preset_on_the_shared_file(tmp_path):
    result = celltable.convert(SQLITE, tmp_path / "o.parquet", preset=CELL_HEALTH)
    assert result.rows_out == _joined_rows(SQLITE, by_table_number=True)
    assert result.tables[0].dropped == _sqlite_rows(SQLITE, "Cytoplasm") - result.rows_out


def _csv_rows(path: Path) -> int:
    with path.open(newline="") as f:
        return sum(1 for _ in csv.reader(f)) - 1


def test_the_cytominer_database_csv_layout_converts_one_plate_per_site(tmp_path):
    sites = sorted(p for p in CSV_SITES.iterdir() if p.is_dir())
    result = celltable.convert(CSV_SITES, tmp_path / "o.parquet",
                               preset="cellprofiler_csv_cytominer_database")
    assert result.plates == tuple(p.name for p in sites)
    expected = 0
    for site in sites:
        with (site / "Cytoplasm.csv").open(newline="") as f:
            cyto = list(csv.DictReader(f))
        keys = {}
        for table in ("Cells", "Nuclei"):
            with (site / f"{table}.csv").open(newline="") as f:
                keys[table] = {(r["ImageNumber"], r["ObjectNumber"]) for r in csv.DictReader(f)}
        expected += sum((r["ImageNumber"], r["Parent_Cells"]) in keys["Cells"]
                        and (r["ImageNumber"], r["Parent_Nuclei"]) in keys["Nuclei"] for r in cyto)
    assert result.rows_out == expected == pq.read_metadata(result.dest_path).num_rows
    assert result.rows_out + result.tables[0].dropped == sum(
        _csv_rows(s / "Cytoplasm.csv") for s in sites)
    names = pq.read_schema(result.dest_path).names
    assert "Metadata_Well" in names and "Cells_AreaShape_Area" in names


def test_plain_cellprofiler_csv_reads_the_lower_case_layout_the_same(tmp_path):
    a = celltable.convert(CSV_SITES, tmp_path / "a.parquet", preset="cellprofiler_csv")
    b = celltable.convert(CSV_SITES, tmp_path / "b.parquet",
                          preset="cellprofiler_csv_cytominer_database")
    assert pq.read_table(a.dest_path).equals(pq.read_table(b.dest_path))
