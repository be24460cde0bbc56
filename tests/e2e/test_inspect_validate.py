"""``celltable inspect``, ``validate``, preset detection and help, on the shared data."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

import celltable
from celltable.cli import app
from tests.conftest import REAL_DATA

runner = CliRunner()


def _run(*args):
    return runner.invoke(app, [str(a) for a in args], env={"COLUMNS": "200"})


def _one_error(result, *words):
    assert result.exit_code == 1, result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("celltable: error:"), result.output
    for w in words:
        assert w in lines[0]


def _inspect_json(*args):
    result = _run("inspect", *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


# inspect ------------------------------------------------------------------------------------

def test_inspect_shows_the_nf1_sqlite_tables_keys_and_no_issues(nf1_sqlite):
    result = _run("inspect", nf1_sqlite)
    assert result.exit_code == 0, result.output
    for text in ("CellProfiler SQLite (ExportToDatabase)", "cellprofiler_sqlite (detected)",
                 "Per_Cytoplasm", "Cytoplasm_Number_Object_Number", "no issues found"):
        assert text in result.stdout
    report = _inspect_json(nf1_sqlite)
    assert (report["kind"], report["preset"], report["supported"]) == (
        "cellprofiler_sqlite", "cellprofiler_sqlite", True)
    (plate,) = report["plates"]
    tables = {t["table"]: t for t in plate["tables"]}
    assert {n: t["rows"] for n, t in tables.items()} == {
        "Image": 32, "Cytoplasm": 242, "Cells": 242, "Nuclei": 433}
    assert tables["Cytoplasm"]["parent_references"] == ["Cytoplasm_Parent_Cells",
                                                        "Cytoplasm_Parent_Nuclei"]
    assert set(plate["orphans"].values()) == {0} and report["issues"] == []


def test_inspect_example_human_notes_the_files_it_does_not_read(example_human):
    report = _inspect_json(example_human)
    assert report["preset"] == "cellprofiler_csv"
    tables = report["plates"][0]["tables"]
    assert {t["table"]: (t["rows"], t["columns"]) for t in tables} == {
        "Image": (1, 81), "Cytoplasm": (289, 103), "Cells": (289, 104), "Nuclei": (289, 105)}
    assert {t["image_key"] for t in tables} == {"ImageNumber"}
    assert {t["object_number"] for t in tables if t["table"] != "Image"} == {"ObjectNumber"}
    shared = REAL_DATA / "cellprofiler" / "ExampleHuman"
    messages = [i["message"] for i in _inspect_json(shared)["issues"]]
    assert messages == ["not read (no table of preset cellprofiler_csv has that name): "
                        "Experiment.csv, PH3.csv"]


def test_inspect_lists_every_plate(three_example_plates, two_nf1_plates):
    csv = _inspect_json(three_example_plates)
    assert [p["plate"] for p in csv["plates"]] == ["plate_a", "plate_b", "plate_c"]
    assert csv["preset"] == "cellprofiler_csv"  # its cytominer-database alias finds as many
    assert csv["matches"] == [{"preset": p, "plates": 3, "tables": 12} for p in (
        "cellprofiler_csv", "cellprofiler_csv_cytominer_database")]
    sqlite = _inspect_json(two_nf1_plates)
    assert sqlite["preset"] == "cellprofiler_sqlite"
    assert [p["plate"] for p in sqlite["plates"]] == ["plate_1.sqlite", "plate_2.sqlite"]
    result = _run("inspect", two_nf1_plates)
    assert "plate_2.sqlite" in result.stdout and "plate" in result.stdout


def test_inspect_finds_orphans_and_a_missing_table(tmp_path, example_human):
    src = tmp_path / "src"
    shutil.copytree(example_human, src)
    lines = (src / "Cells.csv").read_text().splitlines(keepends=True)
    (src / "Cells.csv").write_text("".join(lines[:-2]))
    (src / "Image.csv").unlink()
    report = _inspect_json(src)
    issues = {(i["severity"], i["message"]) for i in report["issues"]}
    assert ("warning", "2 of 289 Cytoplasm rows have no partner in Cytoplasm.Parent_Cells -> "
                       "Cells: a joined conversion drops them") in issues
    assert any(s == "warning" and m.startswith("no image table") for s, m in issues)


def test_in_carta_is_inspected_with_its_preset_one_plate_per_file():
    path = REAL_DATA / "in-carta" / "colas-lab"
    report = _inspect_json(path)
    assert (report["kind"], report["supported"], report["preset"]) == ("in_carta", True, "in-carta")
    assert len(report["plates"]) == 4 and report["issues"] == []


def test_deepprofiler_is_inspected_with_its_preset_one_plate_per_folder():
    path = REAL_DATA / "deepprofiler" / "pycytominer_example"
    report = _inspect_json(path)
    assert (report["kind"], report["supported"], report["preset"]) == (
        "deepprofiler", True, "deepprofiler")
    assert len(report["plates"]) == 1 and report["issues"] == []


def test_inspect_fails_in_one_line_on_bad_input(tmp_path, example_human):
    _one_error(_run("inspect", tmp_path / "nowhere"), "does not exist")
    (tmp_path / "empty").mkdir()
    _one_error(_run("inspect", tmp_path / "empty"), "no built-in preset finds tables")
    _one_error(_run("inspect", example_human, "--preset", "cellprofiler_sqlite"), "no tables")
    _one_error(_run("inspect", example_human, "--preset", "nope"), "unknown preset")


# detection in convert -----------------------------------------------------------------------

def test_convert_without_a_preset_detects_it_and_says_which(tmp_path, two_nf1_plates):
    dest = tmp_path / "o.parquet"
    result = _run("convert", two_nf1_plates, dest)
    assert result.exit_code == 0, result.output
    assert "detected preset cellprofiler_sqlite (8 tables in 2 plate(s))" in result.stderr
    assert "detected" not in result.stdout and pq.read_metadata(dest).num_rows == 2 * 242


def test_quiet_says_nothing_on_stderr(tmp_path, example_human):
    quiet = _run("convert", example_human, tmp_path / "q.parquet", "--quiet")
    assert quiet.exit_code == 0 and quiet.stderr == ""


def test_the_api_detects_by_default_and_reports_progress_only_when_asked(tmp_path, nf1_sqlite,
                                                                          capsys):
    seen = []
    result = celltable.convert(nf1_sqlite, tmp_path / "o.parquet", chunk_size=100,
                               progress=seen.append)
    assert result.preset == "cellprofiler_sqlite" and result.rows_out == 242
    assert [(p.stage, p.done, p.total) for p in seen][-1] == ("joined", 3, 3)
    assert seen[-1].rows == seen[-1].rows_total == 242
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""  # quiet by default, as notebooks want


# validate -----------------------------------------------------------------------------------

def test_validate_passes_a_fresh_output(converted):
    example = converted.example_human
    result = _run("validate", example)
    assert result.exit_code == 0, result.output
    assert "valid (289 rows x 327 columns" in result.stdout
    for check in ("✓ rows", "✓ schema", "✓ null counts", "✓ key digest", "✓ column digests"):
        assert check in result.stdout
    report = json.loads(_run("validate", example, "--json").stdout)
    assert report["ok"] and [c["name"] for c in report["tables"][0]["checks"]] == [
        "rows", "schema", "null counts", "key digest", "column digests"]
    if converted.nf1 is not None:
        assert celltable.validate(converted.nf1).ok


def test_validate_checks_every_table_of_a_folder(tmp_path, three_example_plates):
    folder = celltable.convert(three_example_plates, tmp_path / "tables", join=False)
    report = celltable.validate(folder.dest_path)
    assert report.ok and [Path(t.path).name for t in report.tables] == [
        "tables", "cells.parquet", "cytoplasm.parquet", "image.parquet", "nuclei.parquet"]
    assert [c.name for c in report.tables[0].checks] == ["files"]


def _rewrite(src: Path, dest: Path, change) -> None:
    table = pq.read_table(src)
    meta = pq.read_metadata(src).metadata
    table = change(table).replace_schema_metadata(None)
    pq.write_table(table, dest)
    rewritten = pq.read_table(dest)
    with pq.ParquetWriter(dest, rewritten.schema) as w:  # keep celltable's records
        w.write_table(rewritten)
        w.add_key_value_metadata({k.decode(): v.decode() for k, v in meta.items()
                                  if k.startswith(b"celltable") or k.startswith(b"data-")})


def test_validate_catches_lost_rows_and_changed_values(tmp_path, converted):
    example = converted.example_human
    fewer = tmp_path / "fewer.parquet"
    _rewrite(example, fewer, lambda t: t.slice(1))
    result = _run("validate", fewer)
    assert result.exit_code == 1
    assert "INVALID" in result.stdout and "✗ rows: rows differ: 289 recorded, 288 footer" in result.stdout

    swapped = tmp_path / "swapped.parquet"
    def swap(t):
        objects = t.column("Metadata_ObjectNumber").to_pylist()
        objects[0], objects[1] = objects[1], objects[0]
        i = t.schema.get_field_index("Metadata_ObjectNumber")
        return t.set_column(i, "Metadata_ObjectNumber", pa.array(objects, pa.int64()))
    _rewrite(example, swapped, swap)
    report = celltable.validate(swapped)
    assert not report.ok
    assert {c.name: c.ok for c in report.tables[0].checks} == {
        "rows": True, "schema": True, "null counts": True, "key digest": False,
        "column digests": False}


def test_validate_fails_in_one_line_on_bad_input(tmp_path):
    _one_error(_run("validate", tmp_path / "nowhere.parquet"), "does not exist")
    (tmp_path / "notes.parquet").write_text("not parquet")
    _one_error(_run("validate", tmp_path / "notes.parquet"), "not a readable Parquet file")
    plain = tmp_path / "plain.parquet"
    pq.write_table(pa.table({"x": [1]}), plain)
    _one_error(_run("validate", plain), "not written by celltable")


# help, version, completion ------------------------------------------------------------------

@pytest.mark.parametrize("command", [[], ["convert"], ["inspect"], ["validate"], ["presets"]])
def test_every_help_teaches_with_an_example(command):
    result = _run(*command, "--help")
    assert result.exit_code == 0 and "Example: celltable" in result.stdout


def test_version_and_shell_completion_are_available():
    version = _run("--version")
    assert version.exit_code == 0 and version.stdout.strip() == f"celltable {_version()}"
    assert "--install-completion" in _run("--help").stdout


def _version():
    from celltable.bootstrap import package_version

    return package_version()
