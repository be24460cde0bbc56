"""The run report on a source whose plates differ: columns dropped in one plate, retyped in
another, an empty file, header-only files. Made from the real ExampleHuman CSVs."""

from __future__ import annotations

import csv
import json
import shutil
import sqlite3
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

import celltable
from celltable.cli import app
from tests.conftest import REAL_DATA

EXAMPLE = REAL_DATA / "cellprofiler" / "ExampleHuman"
TABLES = ("Image.csv", "Cells.csv", "Cytoplasm.csv", "Nuclei.csv")
DROPPED = ["AreaShape_Compactness", "AreaShape_Eccentricity"]

runner = CliRunner()


def _rewrite(path: Path, edit) -> None:
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    rows = edit(rows)
    with path.open("w", newline="") as f:
        csv.writer(f).writerows(rows)


def _drop(columns):
    def edit(rows):
        keep = [i for i, name in enumerate(rows[0]) if name not in columns]
        return [[r[i] for i in keep] for r in rows]
    return edit


def _map(column, fn):
    def edit(rows):
        i = rows[0].index(column)
        return [rows[0]] + [[*r[:i], fn(n, r[i]), *r[i + 1:]] for n, r in enumerate(rows[1:])]
    return edit


def _plates(tmp_path: Path, names: str) -> Path:
    """A folder of plates named by the letters of ``names``, each a copy of ExampleHuman."""
    src = tmp_path / "plates"
    for plate in names:
        (src / plate).mkdir(parents=True)
        for name in TABLES:
            shutil.copyfile(EXAMPLE / name, src / plate / name)
            (src / plate / name).chmod(0o644)
    return src


@pytest.fixture
def mixed(tmp_path: Path) -> Path:
    """Four plates: ``a`` as exported plus an empty ``Experiment.csv``; ``b`` without two Cells
    columns; ``c`` with Nuclei areas as fractions, a Cells count as text, and a header-only
    ``PH3.csv``; ``d`` with a header-only Cytoplasm table."""
    src = _plates(tmp_path, "abcd")
    (src / "a" / "Experiment.csv").write_bytes(b"")
    _rewrite(src / "b" / "Cells.csv", _drop(DROPPED))
    _rewrite(src / "c" / "Nuclei.csv", _map("AreaShape_Area", lambda n, v: f"{v}.5"))
    _rewrite(src / "c" / "Cells.csv",
             _map("Children_Cytoplasm_Count", lambda n, v: "n/a" if n == 0 else v))
    (src / "c" / "PH3.csv").write_text((EXAMPLE / "PH3.csv").read_text().splitlines()[0] + "\n")
    _rewrite(src / "d" / "Cytoplasm.csv", lambda rows: rows[:1])
    return src


def _convert(*args: object):
    return runner.invoke(app, ["convert", *map(str, args)])


def test_plates_that_differ_convert_to_the_union_and_the_report_names_every_difference(
        tmp_path, mixed):
    dest = tmp_path / "out.parquet"
    run = _convert(mixed, dest, "--preset", "cellprofiler_csv")
    assert run.exit_code == 0, run.output

    table = pq.read_table(dest)
    assert table.num_rows == 3 * 289  # plate d has no cytoplasm rows
    types = {f.name: str(f.type) for f in table.schema}
    assert types["Nuclei_AreaShape_Area"] == "double"
    assert types["Cells_Children_Cytoplasm_Count"] == "string"
    compact = table.select(["Metadata_TableNumber", "Cells_AreaShape_Compactness"]).to_pylist()
    assert {r["Cells_AreaShape_Compactness"] is None for r in compact if r["Metadata_TableNumber"] == "b"} == {True}
    assert all(r["Cells_AreaShape_Compactness"] is not None for r in compact
               if r["Metadata_TableNumber"] != "b")

    report = json.loads(Path(f"{dest}.report.json").read_text())
    assert report["report_version"] == 1
    assert report["dest"] == str(dest)
    assert report["peak_memory_bytes"]["process"] > 50 * 2**20  # DuckDB and Arrow are loaded
    files = report["files"]
    assert files["found"] == 16 + 2 and len(files["used"]) == 16
    skipped = {s["path"]: s["reason"] for s in files["skipped"]}
    assert set(skipped) == {"a/Experiment.csv", "c/PH3.csv"}
    assert skipped["a/Experiment.csv"].startswith("empty file;")
    assert skipped["c/PH3.csv"].startswith("header only")
    assert report["tables_without_rows"] == [
        {"plate": "d", "table": "Cytoplasm", "path": "d/Cytoplasm.csv"}]
    assert report["rows_read"] == {"Image": 4, "Cells": 4 * 289, "Cytoplasm": 3 * 289,
                                   "Nuclei": 4 * 289}
    [out] = report["outputs"]
    assert (out["rows_in"], out["rows_out"], out["rows_dropped"]) == (867, 867, 0)
    assert out["columns"] == table.num_columns

    columns = report["columns"]
    assert columns["added"] == ["Metadata_TableNumber"]
    assert columns["missing"] == [{
        "table": "joined", "plate": "b", "source_table": "Cells", "path": "b/Cells.csv",
        "columns": ["Cells_" + c for c in DROPPED]}]
    cast = {c["column"]: (c["type"], c["from"]) for c in columns["cast"]}
    assert cast == {
        "Nuclei_AreaShape_Area": ("float64", {"a": "int64", "b": "int64", "d": "int64"}),
        "Cells_Children_Cytoplasm_Count": ("string", {"a": "int64", "b": "int64", "d": "int64"}),
    }

    said = run.output
    assert "skipped 2 file(s): a/Experiment.csv (empty file;" in said
    assert "tables without rows: d/Cytoplasm.csv" in said
    assert "b lacks 2 Cells column(s)" in said
    assert "Nuclei_AreaShape_Area to float64 (int64 in a, b, d)" in said
    assert f"report: {dest}.report.json" in said
    assert "peak memory" in said

    valid = runner.invoke(app, ["validate", str(dest)])
    assert valid.exit_code == 0, valid.output


def test_report_option_moves_the_report_and_a_dash_prints_it(tmp_path):
    dest = tmp_path / "out.parquet"
    elsewhere = tmp_path / "reports" / "run.json"
    run = _convert(EXAMPLE, dest, "--report", elsewhere)
    assert run.exit_code == 0, run.output
    assert not Path(f"{dest}.report.json").exists()
    assert json.loads(elsewhere.read_text())["outputs"][0]["rows_out"] == 289

    again = runner.invoke(app, ["convert", str(EXAMPLE), str(dest), "--overwrite", "--report", "-"])
    assert again.exit_code == 0, again.output
    assert not Path(f"{dest}.report.json").exists()
    printed = json.loads(again.stdout[again.stdout.index("{"):again.stdout.rindex("}") + 1])
    assert printed["files"]["skipped"][0]["reason"].startswith("CellProfiler's Experiment table: kept")
    assert printed["experiments"][0]["values"]["CellProfiler_Version"] == "4.0.6"


def test_the_python_result_carries_the_report_and_a_folder_output_gets_one_beside_it(tmp_path):
    dest = tmp_path / "tables"
    result = celltable.convert(EXAMPLE, dest, preset="cellprofiler_csv", join=False)
    assert result.report is not None
    assert result.report_path == f"{dest}.report.json"
    report = json.loads(Path(result.report_path).read_text())
    assert [o["table"] for o in report["outputs"]] == [t.name for t in result.tables]
    assert report["join"] is False
    assert celltable.validate(dest).ok


def test_a_failed_conversion_writes_no_report(tmp_path):
    src = tmp_path / "bad"
    src.mkdir()
    for name in TABLES:
        shutil.copyfile(EXAMPLE / name, src / name)
    (src / "Cells.csv").write_bytes(b"")  # a table of the preset, empty: a named error
    dest = tmp_path / "out.parquet"
    run = _convert(src, dest, "--preset", "cellprofiler_csv")
    assert run.exit_code == 1
    assert not dest.exists() and not Path(f"{dest}.report.json").exists()


CYTOMINER = REAL_DATA / "cytominer-database" / "data_a_sqlite" / "data_a.sqlite"


def test_sqlite_values_not_cast_and_integers_widened_are_in_the_report(tmp_path):
    src = tmp_path / "src" / "junk.sqlite"
    src.parent.mkdir()
    shutil.copyfile(CYTOMINER, src)
    with sqlite3.connect(src) as con:
        con.execute("UPDATE Cytoplasm SET Cytoplasm_AreaShape_Area = 'n/a' WHERE rowid = 1")
        plate = con.execute("SELECT TableNumber FROM Cytoplasm WHERE rowid = 1").fetchone()[0]
    result = celltable.convert(src, tmp_path / "o.parquet",
                               preset="cell-health-cellprofiler-to-cytominer-database")
    report = json.loads(Path(result.report_path).read_text())["columns"]
    assert report["values_not_cast"] == [
        {"plate": f"junk.sqlite/{plate}", "table": "Cytoplasm",
         "column": "Cytoplasm_AreaShape_Area", "type": "int64", "values": 1}]
    widened = {(w["table"], w["column"]) for w in report["widened_in_source"]}
    assert ("Image", "ExecutionTime_30CalculateMath") in widened


def test_rows_and_orphans_are_counted_per_plate_too(tmp_path):
    src = _plates(tmp_path, "ab")
    _rewrite(src / "b" / "Cells.csv", lambda rows: [rows[0], *rows[2:]])  # one cell gone
    with (src / "a" / "Cytoplasm.csv").open(newline="") as f:
        cytoplasm = sum(1 for _ in csv.reader(f)) - 1
    result = celltable.convert(src, tmp_path / "out.parquet", preset="cellprofiler_csv")
    report = json.loads(Path(result.report_path).read_text())
    (joined,) = report["outputs"]
    plates = {p["plate"]: p for p in joined["plates"]}
    assert set(plates) == {"a", "b"}
    assert plates["a"] == {"plate": "a", "rows_in": cytoplasm, "rows_out": cytoplasm,
                           "rows_dropped": 0, "orphans": dict.fromkeys(joined["orphans"], 0),
                           "null_object_numbers": 0}
    assert plates["b"]["rows_in"] == cytoplasm
    assert plates["b"]["rows_dropped"] == 1 == plates["b"]["rows_in"] - plates["b"]["rows_out"]
    assert plates["b"]["orphans"] == joined["orphans"] and sum(joined["orphans"].values()) == 1
    assert sum(p["rows_out"] for p in plates.values()) == joined["rows_out"]
    assert pq.read_metadata(tmp_path / "out.parquet").num_rows == joined["rows_out"]
