from __future__ import annotations

import csv
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from celltable.adapters.sqlite_reader import accelerator
from celltable.cli import app

runner = CliRunner()


def _convert(*args: str):
    return runner.invoke(app, ["convert", *map(str, args)])


def _cytotable_columns(folder: Path) -> set[str]:
    """The columns CytoTable 1.2.6 writes for ExampleHuman, derived from its documented rules
    (join shape A): image number, image file names, cytoplasm minus the
    image number, cells and nuclei minus image and object numbers."""
    def header(name):
        with (folder / name).open() as f:
            return next(csv.reader(f))

    def cytotable_name(col, stem):
        if col == "ObjectNumber":
            return "Metadata_ObjectNumber"
        if col.startswith("Parent_"):
            return f"Metadata_{stem}_{col}"
        return f"{stem}_{col}"

    cols = {"Metadata_ImageNumber"} | {f"Image_{c}" for c in header("Image.csv") if c.startswith("FileName_")}
    for stem, drop in (("Cytoplasm", {"ImageNumber"}), ("Cells", {"ImageNumber", "ObjectNumber"}),
                       ("Nuclei", {"ImageNumber", "ObjectNumber"})):
        cols |= {cytotable_name(c, stem) for c in header(f"{stem}.csv") if c not in drop}
    return cols


def test_example_human_converts_to_one_row_per_cell_with_every_incumbent_column(tmp_path, example_human):
    dest = tmp_path / "out.parquet"
    result = _convert(example_human, dest)
    assert result.exit_code == 0, result.output
    table = pq.read_table(dest)
    assert table.num_rows == 289
    expected = _cytotable_columns(example_human)
    assert len(expected) == 312
    assert expected <= set(table.column_names)
    assert table.column_names[:3] == ["Metadata_TableNumber", "Metadata_ImageNumber", "Metadata_ObjectNumber"]
    assert "289 rows" in result.output


def test_features_line_up_with_their_source_objects(tmp_path, example_human):
    dest = tmp_path / "out.parquet"
    assert _convert(example_human, dest).exit_code == 0
    out = pq.read_table(dest).to_pylist()
    with (example_human / "Cells.csv").open() as f:
        cells = {int(r["ObjectNumber"]): float(r["AreaShape_Area"]) for r in csv.DictReader(f)}
    for row in out:
        assert row["Cells_AreaShape_Area"] == cells[row["Metadata_Cytoplasm_Parent_Cells"]]


def test_nf1_sqlite_converts_with_plate_and_well(tmp_path, nf1_sqlite):
    dest = tmp_path / "nf1.parquet"
    result = _convert(nf1_sqlite, dest, "--preset", "cellprofiler_sqlite")
    assert result.exit_code == 0, result.output
    table = pq.read_table(dest)
    assert table.num_rows == 242
    assert {"Metadata_Plate", "Metadata_Well", "Metadata_Site"} <= set(table.column_names)
    with sqlite3.connect(nf1_sqlite) as con:
        for name in ("Cells", "Cytoplasm", "Nuclei"):
            cols = [r[1] for r in con.execute(f"PRAGMA table_info(Per_{name})")]
            features = {c for c in cols if c != "ImageNumber" and "_Number_Object_Number" not in c
                        and "_Parent_" not in c}
            parents = {f"Metadata_{c}" for c in cols if "_Parent_" in c}
            assert len(features) > 380
            assert features | parents <= set(table.column_names), name


def test_three_csv_plates_give_exactly_three_times_the_rows(tmp_path, three_example_plates):
    dest = tmp_path / "multi.parquet"
    assert _convert(three_example_plates, dest, "--chunk-size", "100").exit_code == 0
    table = pq.read_table(dest)
    assert table.num_rows == 3 * 289
    counts = table.group_by("Metadata_TableNumber").aggregate([("Metadata_ObjectNumber", "count")])
    assert sorted(counts.to_pylist(), key=lambda r: r["Metadata_TableNumber"]) == [
        {"Metadata_TableNumber": p, "Metadata_ObjectNumber_count": 289}
        for p in ("plate_a", "plate_b", "plate_c")]


def test_two_sqlite_plates_give_exactly_twice_the_rows(tmp_path, two_nf1_plates):
    dest = tmp_path / "multi.parquet"
    result = _convert(two_nf1_plates, dest, "--preset", "cellprofiler_sqlite", "--chunk-size", "60")
    assert result.exit_code == 0, result.output
    table = pq.read_table(dest)
    assert table.num_rows == 2 * 242
    assert set(table.column("Metadata_TableNumber").to_pylist()) == {"plate_1.sqlite", "plate_2.sqlite"}
    keys = set(zip(*(table.column(c).to_pylist() for c in
                     ("Metadata_TableNumber", "Metadata_ImageNumber", "Metadata_ObjectNumber")), strict=True))
    assert len(keys) == 484


def test_no_join_writes_one_file_per_table(tmp_path, nf1_sqlite):
    dest = tmp_path / "tables"
    assert _convert(nf1_sqlite, dest, "--preset", "cellprofiler_sqlite", "--no-join").exit_code == 0
    rows = {p.name: pq.read_metadata(p).num_rows for p in dest.glob("*.parquet")}
    assert (dest / "_celltable_manifest.json").is_file()
    assert rows == {"image.parquet": 32, "cells.parquet": 242, "cytoplasm.parquet": 242,
                    "nuclei.parquet": 433}


def test_provenance_is_recorded_in_the_parquet_metadata(tmp_path, example_human):
    dest = tmp_path / "out.parquet"
    assert _convert(example_human, dest).exit_code == 0
    meta = pq.read_metadata(dest).metadata
    assert meta[b"data-producer"] == b"celltable"
    prov = json.loads(meta[b"celltable.provenance"])
    assert prov["preset"] == "cellprofiler_csv" and prov["rows_out"] == 289
    assert prov["sources"][0]["tables"]["Cells"]["rows"] == 289


def _fails(result, dest: Path, *words: str):
    assert result.exit_code == 1
    # the error is one line, after the notice naming a detected preset, if any
    lines = [ln for ln in result.output.splitlines()
             if ln.strip() and not ln.startswith("celltable: detected preset")]
    assert len(lines) == 1 and lines[0].startswith("celltable: error:"), result.output
    for w in words:
        assert w in lines[0]
    assert not dest.exists()
    assert not [p for p in dest.parent.iterdir() if p.name.startswith(f".{dest.name}.")]


def test_a_missing_source_fails_in_one_line(tmp_path):
    dest = tmp_path / "out.parquet"
    _fails(_convert(tmp_path / "nowhere", dest), dest, "does not exist")


def test_an_unknown_preset_lists_the_valid_ones(tmp_path, example_human):
    dest = tmp_path / "out.parquet"
    _fails(_convert(example_human, dest, "--preset", "nope"), dest, "cellprofiler_sqlite")


def test_a_sqlite_file_with_the_csv_preset_suggests_the_sqlite_one(tmp_path, nf1_sqlite):
    dest = tmp_path / "out.parquet"
    _fails(_convert(nf1_sqlite, dest, "--preset", "cellprofiler_csv"), dest,
           "--preset cellprofiler_sqlite")


def test_a_corrupt_sqlite_names_the_file(tmp_path, nf1_sqlite):
    bad = tmp_path / "bad.sqlite"
    bad.write_bytes(nf1_sqlite.read_bytes()[:4096] + b"\0garbage" * 1000)
    dest = tmp_path / "out.parquet"
    _fails(_convert(bad, dest, "--preset", "cellprofiler_sqlite"), dest, "bad.sqlite")


def test_an_unreadable_csv_names_the_file(tmp_path, example_human):
    src = tmp_path / "src"
    shutil.copytree(example_human, src)
    (src / "Nuclei.csv").write_bytes(b'ImageNumber,ObjectNumber\n1,"unterminated\n' + b"\xff\xfe" * 10)
    dest = tmp_path / "out.parquet"
    _fails(_convert(src, dest), dest, "Nuclei.csv")


def test_an_existing_destination_is_kept_unless_overwrite(tmp_path, example_human):
    dest = tmp_path / "out.parquet"
    dest.write_text("precious")
    result = _convert(example_human, dest)
    assert result.exit_code == 1 and "--overwrite" in result.output
    assert dest.read_text() == "precious"
    assert _convert(example_human, dest, "--overwrite").exit_code == 0
    assert pq.read_metadata(dest).num_rows == 289


def test_presets_are_listed_with_a_description():
    result = runner.invoke(app, ["presets"])
    assert result.exit_code == 0
    assert {ln.split()[0] for ln in result.output.splitlines()} == {
        "cellprofiler_csv", "cellprofiler_sqlite", "cellprofiler_sqlite_pycytominer",
        "cellprofiler_sqlite_cpg0016_jump", "cell-health-cellprofiler-to-cytominer-database",
        "cellprofiler_csv_cytominer_database", "in-carta", "deepprofiler"}


@pytest.mark.parametrize("reader", ["arrow", *(["extension"] if accelerator() else [])])
def test_sqlite_reading_needs_no_download(tmp_path, nf1_sqlite, reader):
    """A fresh HOME has no DuckDB extension cache and the network is not used: the SQLite reader
    is the ADBC driver's wheel, or DuckDB's extension from its wheel (where installed)."""
    # Any connection Python makes past this machine is refused and noted.
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(NO_NETWORK)
    env = {**os.environ, "HOME": str(tmp_path / "home"), "no_proxy": "*",
           "http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9",
           "CELLTABLE_SQLITE_READER": reader, "PYTHONPATH": str(tmp_path / "site"),
           "NETWORK_LOG": str(tmp_path / "network.log")}
    (tmp_path / "home").mkdir()
    dest = tmp_path / "out.parquet"
    done = subprocess.run(
        [sys.executable, "-m", "celltable.cli", "convert", str(nf1_sqlite), str(dest),
         "--preset", "cellprofiler_sqlite"],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert pq.read_metadata(dest).num_rows == 242
    assert not (tmp_path / "home" / ".duckdb").exists()
    assert not (tmp_path / "network.log").exists()


NO_NETWORK = """
import os, sys

def _audit(event, args):
    if event == "socket.connect" and isinstance(args[1], tuple) and args[1][0] not in (
            "127.0.0.1", "::1", "localhost"):
        with open(os.environ["NETWORK_LOG"], "a") as log:
            log.write(f"{args[1]}\\n")
        raise OSError("network unreachable (test)")

sys.addaudithook(_audit)
"""


@pytest.mark.parametrize("fmt", ["json", "console"])
def test_log_format_is_chosen_on_the_command_line(tmp_path, example_human, fmt):
    done = subprocess.run(
        [sys.executable, "-m", "celltable.cli", "convert", str(example_human),
         str(tmp_path / "o.parquet"), "-v", "--log-format", fmt],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    if fmt == "json":  # every line is an event, the detected preset among them
        events = [json.loads(line)["event"] for line in lines]
        assert events[:2] == ["preset_detected", "source_found"]
    else:
        assert "preset_detected" in lines[0] and "source_found" in lines[1]
        assert not any(line.startswith("{") for line in lines)


def test_a_conversion_detecting_its_preset_lists_the_source_once(tmp_path, example_human,
                                                                monkeypatch):
    """Detection tries every built-in preset on one listing, made with the conversion's own
    adapters (not a second set built to detect)."""
    walked: list[str] = []
    real_walk = os.walk

    def walk(top, *args, **kwargs):
        walked.append(os.fspath(top))
        return real_walk(top, *args, **kwargs)

    monkeypatch.setattr(os, "walk", walk)
    done = _convert(example_human, tmp_path / "o.parquet", "--quiet")
    assert done.exit_code == 0, done.output
    assert walked.count(str(example_human)) == 1
    assert pq.read_metadata(tmp_path / "o.parquet").num_rows == 289
