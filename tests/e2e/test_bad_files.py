"""The bad-input corpus, part two: sources holding several bad files. A conversion names every
bad file at once (one line each, capped) before any data moves and writes nothing;
``--skip-bad-files`` converts the rest and lists each skipped file, with why, in the run report.
``inspect`` agrees with ``convert`` on what is bad and what is not."""

from __future__ import annotations

import io
import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from numpy.lib import format as npy
from typer.testing import CliRunner

import celltable
from celltable import BadSourceFilesError, SourceReadError
from celltable.cli import app
from tests.conftest import EXAMPLE_HUMAN, NF1_SQLITE, REAL_DATA

CYTOMINER = REAL_DATA / "cytominer-database" / "data_a"
DP = REAL_DATA / "deepprofiler" / "pycytominer_example"
IN_CARTA = REAL_DATA / "in-carta" / "colas-lab"
runner = CliRunner()


def _sites(tmp: Path, n: int = 4) -> Path:
    """``n`` cytominer-database sites (copies of the real sites 1 and 2), 20 cells each."""
    src = tmp / "sites"
    for i in range(1, n + 1):
        shutil.copytree(CYTOMINER / str((i - 1) % 2 + 1), src / f"site{i}")
    return src


def _cut(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # inside a row


def _messy_sites(tmp: Path) -> Path:
    """The issue's source: one site's Cells.csv empty, another's Cytoplasm.csv cut mid-row, a
    third's image.csv a header only (not bad: no rows)."""
    src = _sites(tmp)
    (src / "site2" / "Cells.csv").write_bytes(b"")
    _cut(src / "site3" / "Cytoplasm.csv")
    image = src / "site4" / "image.csv"
    image.write_text(image.read_text().splitlines()[0] + "\n")
    return src


def _cli(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def _error_lines(output: str) -> list[str]:
    return [ln for ln in output.splitlines()
            if ln.strip() and not ln.startswith("celltable: detected preset")]


def test_every_bad_site_is_named_in_one_run_and_nothing_is_written(tmp_path):
    src = _messy_sites(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(BadSourceFilesError) as raised:
        celltable.convert(src, out / "py.parquet")
    assert {Path(p).relative_to(src).as_posix() for p, _ in raised.value.files} == {
        "site2/Cells.csv", "site3/Cytoplasm.csv"}
    assert isinstance(raised.value, SourceReadError)
    result = _cli("convert", src, out / "cli.parquet")
    assert result.exit_code == 1
    lines = _error_lines(result.output)
    assert lines[0].startswith("celltable: error: 2 source files cannot be read")
    assert "--skip-bad-files" in lines[0]
    assert len(lines) == 3
    assert "site2/Cells.csv: empty file (0 bytes)" in lines[1]
    assert "site3/Cytoplasm.csv: cut short" in lines[2] and "truncated" in lines[2]
    assert list(out.iterdir()) == []


def test_skip_bad_files_converts_the_rest_and_the_report_lists_each_skipped_file(tmp_path):
    src = _messy_sites(tmp_path)
    dest = tmp_path / "out.parquet"
    result = _cli("convert", src, dest, "--skip-bad-files")
    assert result.exit_code == 0, result.output
    warnings = [ln for ln in result.output.splitlines() if "warning" in ln]
    assert len(warnings) == 1
    assert "skipped 2 bad file(s)" in warnings[0] and f"{dest}.report.json" in warnings[0]
    table = pq.read_table(dest)
    # sites 1 and 4 (header-only image table: rows without image metadata), 20 cells each
    assert sorted(set(table.column("Metadata_TableNumber").to_pylist())) == ["site1", "site4"]
    assert table.num_rows == 40
    report = json.loads(Path(f"{dest}.report.json").read_text())
    reasons = {s["path"]: s["reason"] for s in report["files"]["skipped"]}
    assert reasons["site2/Cells.csv"] == "bad file: empty file (0 bytes)"
    assert reasons["site3/Cytoplasm.csv"].startswith("bad file: cut short")
    for other in ("site2/Cytoplasm.csv", "site2/image.csv", "site3/Cells.csv"):
        assert "skipped" in reasons[other] and "is bad" in reasons[other]
    assert "site4/image.csv" in report["files"]["used"]


def test_skip_bad_files_in_python_reports_the_files_on_the_result(tmp_path):
    src = _messy_sites(tmp_path)
    result = celltable.convert(src, tmp_path / "o.parquet", preset="cellprofiler_csv",
                               skip_bad_files=True)
    assert {Path(b.path).relative_to(src).as_posix() for b in result.bad_files} == {
        "site2/Cells.csv", "site3/Cytoplasm.csv"}
    assert result.plates == ("site1", "site4")
    assert celltable.validate(result.dest_path).ok


def test_many_bad_files_are_listed_one_line_each_then_counted(tmp_path):
    src = _sites(tmp_path, 24)
    for i in range(2, 24):  # 22 bad sites
        (src / f"site{i}" / "Nuclei.csv").write_bytes(b"")
    result = _cli("convert", src, tmp_path / "o.parquet", "--preset", "cellprofiler_csv")
    lines = _error_lines(result.output)
    assert result.exit_code == 1
    assert lines[0].startswith("celltable: error: 22 source files cannot be read")
    assert len(lines) == 1 + 20 + 1 and lines[-1].strip() == "... and 2 more"


def test_inspect_names_the_same_bad_files_and_no_header_only_error(tmp_path):
    src = _messy_sites(tmp_path)
    result = _cli("inspect", src, "--json")
    assert result.exit_code == 1
    report = json.loads(result.output)
    assert {b["path"] for b in report["bad_files"]} == {"site2/Cells.csv", "site3/Cytoplasm.csv"}
    errors = [i["message"] for i in report["issues"] if i["severity"] == "error"]
    assert len(errors) == 2 and all("cannot be read" in e for e in errors)
    site4 = [i for i in report["issues"] if i["plate"] == "site4"]
    assert [i["severity"] for i in site4] == ["info"]
    assert "no rows" in site4[0]["message"]
    assert not any("hold numbers in some plates" in i["message"] for i in report["issues"])


# SQLite ------------------------------------------------------------------------------------


def _sqlite_plates(tmp: Path) -> Path:
    src = tmp / "plates"
    src.mkdir()
    shutil.copy(NF1_SQLITE, src / "a.sqlite")
    shutil.copy(NF1_SQLITE, src / "d.sqlite")
    (src / "b.sqlite").write_bytes(NF1_SQLITE.read_bytes()[:100] + b"\0garbage" * 1000)
    (src / "c.sqlite").write_text("ImageNumber,ObjectNumber\n1,1\n" * 200)
    data = NF1_SQLITE.read_bytes()
    (src / "e.sqlite").write_bytes(data[: len(data) // 2])  # a partial copy
    return src


def test_unreadable_sqlite_files_are_named_together_and_skippable(tmp_path):
    src = _sqlite_plates(tmp_path)
    with pytest.raises(BadSourceFilesError) as raised:
        celltable.convert(src, tmp_path / "x.parquet", preset="cellprofiler_sqlite")
    files = dict((Path(p).name, why) for p, why in raised.value.files)
    assert sorted(files) == ["b.sqlite", "c.sqlite", "e.sqlite"]
    assert files["e.sqlite"].startswith("cut short") and "partial copy" in files["e.sqlite"]
    assert "not a readable SQLite database" in files["c.sqlite"]
    assert not (tmp_path / "x.parquet").exists()
    result = celltable.convert(src, tmp_path / "o.parquet", preset="cellprofiler_sqlite",
                               options=celltable.ConversionOptions(skip_bad_files=True))
    assert result.plates == ("a.sqlite", "d.sqlite")
    assert result.rows_out == 2 * celltable.convert(
        NF1_SQLITE, tmp_path / "one.parquet", preset="cellprofiler_sqlite").rows_out
    assert sorted(Path(b.path).name for b in result.bad_files) == ["b.sqlite", "c.sqlite",
                                                                   "e.sqlite"]


# DeepProfiler NPZ --------------------------------------------------------------------------


def _npy(shape: tuple[int, ...], payload: bytes) -> bytes:
    out = io.BytesIO()
    npy.write_array_header_1_0(out, {"descr": "<f4", "fortran_order": False, "shape": shape})
    return out.getvalue() + payload


def _impossible_site(path: Path) -> None:
    """A site whose features header declares a billion cells but holds a few bytes."""
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("features.npy", _npy((10**9, 100), np.zeros(8, "<f4").tobytes()))
        zf.writestr("locations.npy", _npy((10**9, 2), np.zeros(4, "<f4").tobytes()))


def test_an_npz_site_with_an_impossible_shape_is_named_and_only_it_is_skipped(tmp_path):
    src = tmp_path / "dp"
    shutil.copytree(DP, src)
    plate = src / "SQ00014812"
    _impossible_site(plate / "B01_1.npz")
    with pytest.raises(BadSourceFilesError, match=r"B01_1\.npz.*holds 32 bytes"):
        celltable.convert(src, tmp_path / "x.parquet")
    inspected = celltable.inspect(src)
    assert [b.path for b in inspected.bad] == ["SQ00014812/B01_1.npz"]
    # the other two sites are still described, their rows counted: nothing absurd predicted
    assert [t.rows for p in inspected.plates for t in p.tables] == [337]
    result = celltable.convert(src, tmp_path / "o.parquet",
                               options=celltable.ConversionOptions(skip_bad_files=True))
    assert result.rows_out == 337 and result.plates == ("SQ00014812",)
    assert [Path(b.path).name for b in result.bad_files] == ["B01_1.npz"]


# IN Carta and manifests ---------------------------------------------------------------------


def test_an_empty_in_carta_export_is_named_and_skippable(tmp_path):
    src = tmp_path / "ic"
    shutil.copytree(IN_CARTA, src)
    (src / "empty export.csv").write_bytes(b"")
    full = celltable.convert(IN_CARTA, tmp_path / "full.parquet").rows_out
    result = _cli("convert", src, tmp_path / "x.parquet", "--preset", "in-carta")
    assert result.exit_code == 1 and "empty export.csv" in result.output
    result = celltable.convert(src, tmp_path / "o.parquet", preset="in-carta",
                               options=celltable.ConversionOptions(skip_bad_files=True))
    assert result.rows_out == full
    assert [Path(b.path).name for b in result.bad_files] == ["empty export.csv"]


def test_a_manifest_names_the_bad_files_of_every_source_it_lists(tmp_path):
    src = _messy_sites(tmp_path)
    manifest = tmp_path / "plates.txt"
    manifest.write_text("".join(f"{src / s}\n" for s in ("site1", "site2", "site3", "site4")))
    with pytest.raises(BadSourceFilesError) as raised:
        celltable.convert(manifest, tmp_path / "x.parquet", preset="cellprofiler_csv")
    assert len(raised.value.files) == 2
    result = _cli("convert", manifest, tmp_path / "o.parquet", "--preset", "cellprofiler_csv",
                  "--skip-bad-files", "--quiet")
    assert result.exit_code == 0, result.output
    assert pq.read_metadata(tmp_path / "o.parquet").num_rows == 40


# damage only reading finds ------------------------------------------------------------------


def test_damage_found_while_reading_is_named_for_every_plate_at_once(tmp_path):
    src = tmp_path / "plates"
    for name in ("a", "b", "c"):
        shutil.copytree(EXAMPLE_HUMAN, src / name)
    for name in ("a", "c"):  # a byte that is not UTF-8, in the middle of the file
        image = src / name / "Image.csv"
        image.write_bytes(image.read_bytes().replace(b"AS_09125", b"\xc9S_09125", 1))
    with pytest.raises(BadSourceFilesError) as raised:
        celltable.convert(src, tmp_path / "x.parquet")
    assert sorted(Path(p).parent.name for p, _ in raised.value.files) == ["a", "c"]
    assert not (tmp_path / "x.parquet").exists()
    result = celltable.convert(src, tmp_path / "o.parquet",
                               options=celltable.ConversionOptions(skip_bad_files=True))
    assert result.plates == ("b",) and result.rows_out == 289


# inspect agrees with convert ----------------------------------------------------------------


def test_inspect_names_the_fractional_references_convert_refuses(tmp_path):
    src = tmp_path / "plate"
    shutil.copytree(EXAMPLE_HUMAN, src)
    path = src / "Cytoplasm.csv"
    lines = path.read_text().splitlines(keepends=True)
    column = lines[0].rstrip("\n").split(",").index("Parent_Cells")
    for i in (3, 7):
        row = lines[i].rstrip("\n").split(",")
        row[column] += ".5"
        lines[i] = ",".join(row) + "\n"
    path.write_text("".join(lines))
    inspected = celltable.inspect(src)
    errors = [i.message for i in inspected.issues if i.severity.value == "error"]
    assert errors == [errors[0]] and errors[0].startswith(
        "Cytoplasm.Parent_Cells holds 2 value(s) that are not whole numbers")
    with pytest.raises(celltable.SchemaError, match="Parent_Cells"):
        celltable.convert(src, tmp_path / "o.parquet")


def test_inspect_warns_of_repeated_in_carta_rows_that_convert_keeps(tmp_path):
    src = tmp_path / "ic"
    shutil.copytree(IN_CARTA, src)
    first = sorted(src.glob("*.csv"))[0]
    lines = first.read_text().splitlines(keepends=True)
    first.write_text("".join(lines) + "".join(lines[1:3]))  # two rows exported twice
    assert not [i for i in celltable.inspect(IN_CARTA).issues if "repeat" in i.message]
    repeats = [i for i in celltable.inspect(src).issues if "repeat" in i.message]
    assert len(repeats) == 1 and repeats[0].message.startswith("2 Objects rows repeat")
    before = celltable.convert(IN_CARTA, tmp_path / "a.parquet").rows_out
    assert celltable.convert(src, tmp_path / "b.parquet").rows_out == before + 2
