"""The bad-input corpus: odd and broken sources and destinations, built from copies of the real
data, each with its outcome. Either a named error (in Python) and one line on stderr with exit
code 1 and nothing at DEST (on the command line), or a conversion whose oddity is counted in the
result (rows in, out, dropped, unaccounted)."""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import celltable
from celltable import (
    CelltableError,
    ConfigurationError,
    DestinationError,
    InvalidOptionError,
    InvalidPresetError,
    NoTablesFoundError,
    SchemaError,
    SourceNotFoundError,
    SourceReadError,
    UnknownPresetError,
)
from tests.conftest import EXAMPLE_HUMAN, NF1_SQLITE, REAL_DATA
from tests.e2e.test_cli import _convert, _fails

SQLITE = "cellprofiler_sqlite"


# building bad sources from copies -----------------------------------------------------------


def _csv_copy(tmp: Path, name: str = "plate") -> Path:
    folder = tmp / name
    shutil.copytree(EXAMPLE_HUMAN, folder)
    return folder


def _edit(path: Path, change: Callable[[str], str]) -> None:
    path.write_text(change(path.read_text()))


def _header_only(text: str) -> str:
    return text.splitlines()[0] + "\n"


def _sqlite_copy(tmp: Path, *sql: str, name: str = "plate.sqlite") -> Path:
    path = tmp / name
    shutil.copy(NF1_SQLITE, path)
    with sqlite3.connect(path) as con:
        for statement in sql:
            con.execute(statement)
    con.close()
    return path


def _empty_file(tmp: Path) -> Path:
    src = _csv_copy(tmp)
    (src / "Cytoplasm.csv").write_bytes(b"")
    return src


def _empty_image_file(tmp: Path) -> Path:
    src = _csv_copy(tmp)
    (src / "Image.csv").write_bytes(b"")
    return src


def _truncated_row(tmp: Path) -> Path:
    src = _csv_copy(tmp)
    data = (src / "Cytoplasm.csv").read_bytes()
    (src / "Cytoplasm.csv").write_bytes(data[: len(data) // 2])  # cut inside a row
    return src


def _latin1_value(tmp: Path) -> Path:
    src = _csv_copy(tmp)
    data = (src / "Image.csv").read_bytes()
    (src / "Image.csv").write_bytes(data.replace(b"AS_09125", b"\xc9S_09125", 1))
    return src


def _binary_bytes(tmp: Path) -> Path:
    src = _csv_copy(tmp)
    lines = (src / "Cells.csv").read_bytes().split(b"\n")
    lines[5] += b"\xff\xfe\x00\x81"
    (src / "Cells.csv").write_bytes(b"\n".join(lines))
    return src


def _corrupt_sqlite(tmp: Path) -> Path:
    bad = tmp / "corrupt.sqlite"
    bad.write_bytes(NF1_SQLITE.read_bytes()[:4096] + b"\0garbage" * 1000)
    return bad


def _zero_byte_sqlite(tmp: Path) -> Path:
    path = tmp / "zero.sqlite"
    path.write_bytes(b"")
    return path


def _text_named_sqlite(tmp: Path) -> Path:
    path = tmp / "notes.sqlite"
    path.write_text("ImageNumber,ObjectNumber\n1,1\n" * 200)
    return path


def _text_keys_sqlite(tmp: Path) -> Path:
    return _sqlite_copy(tmp, "UPDATE Per_Cytoplasm SET ImageNumber = 'abc' WHERE rowid IN "
                             "(SELECT rowid FROM Per_Cytoplasm LIMIT 5)")


def _text_keys_csv(tmp: Path) -> Path:
    src = _csv_copy(tmp)
    _edit(src / "Cells.csv", lambda t: t.replace("\n1,5,", "\nx,5,", 1))
    return src


def _no_parent_column(tmp: Path) -> Path:
    src = _csv_copy(tmp)
    _edit(src / "Cytoplasm.csv", lambda t: t.replace("Parent_Cells", "Parent_Cellz", 1))
    return src


def _text_parent_reference(tmp: Path) -> Path:
    """A parent reference holding text (a damaged export), found by fuzzing."""
    src = _csv_copy(tmp)
    lines = (src / "Cytoplasm.csv").read_text().splitlines(keepends=True)
    header = lines[0].rstrip("\n").split(",")
    column = header.index("Parent_Nuclei")
    row = lines[5].rstrip("\n").split(",")
    row[column] = "none"
    lines[5] = ",".join(row) + "\n"
    (src / "Cytoplasm.csv").write_text("".join(lines))
    return src


def _image_only(tmp: Path) -> Path:
    src = _csv_copy(tmp)
    for name in ("Cells.csv", "Cytoplasm.csv", "Nuclei.csv"):
        (src / name).unlink()
    return src


def _empty_folder(tmp: Path) -> Path:
    (tmp / "empty").mkdir()
    return tmp / "empty"


def _a_csv_file(tmp: Path) -> Path:
    return _csv_copy(tmp) / "Cells.csv"


@dataclass(frozen=True)
class Failing:
    """A source that cannot be converted: the error Python raises, words its message holds."""

    build: Callable[[Path], Path]
    error: type[CelltableError]
    words: tuple[str, ...]
    args: tuple[str, ...] = ()

    def preset(self) -> str | None:
        return self.args[1] if self.args[:1] == ("--preset",) else None


FAILING = {
    "empty file": Failing(_empty_file, SourceReadError, ("Cytoplasm.csv", "empty")),
    "empty image file": Failing(_empty_image_file, SourceReadError, ("Image.csv", "empty")),
    "truncated CSV row": Failing(_truncated_row, SourceReadError, ("Cytoplasm.csv", "truncated")),
    "latin-1 byte in a CSV": Failing(_latin1_value, SourceReadError,
                                     ("Image.csv", "not utf-8 encoded", "UTF-8 file")),
    "binary bytes in a CSV": Failing(_binary_bytes, SourceReadError, ("Cells.csv", "UTF-8 file")),
    "corrupt SQLite": Failing(_corrupt_sqlite, SourceReadError, ("corrupt.sqlite",),
                              ("--preset", SQLITE)),
    "zero-byte SQLite": Failing(_zero_byte_sqlite, NoTablesFoundError, ("zero.sqlite", "Per_Image"),
                                ("--preset", SQLITE)),
    "zero-byte SQLite, preset detected": Failing(_zero_byte_sqlite, NoTablesFoundError,
                                                 ("zero.sqlite", "--preset cellprofiler_sqlite")),
    "text file named .sqlite": Failing(_text_named_sqlite, SourceReadError,
                                       ("notes.sqlite", "not a readable SQLite"), ("--preset", SQLITE)),
    "text image keys in SQLite": Failing(_text_keys_sqlite, CelltableError, ("ImageNumber",),
                                         ("--preset", SQLITE)),
    "text image keys in CSV": Failing(_text_keys_csv, SchemaError, ("Cells.csv", "ImageNumber",
                                                                    "whole numbers")),
    "no parent reference column": Failing(_no_parent_column, SchemaError, ("Parent_Cells",)),
    "text in a parent reference": Failing(_text_parent_reference, SchemaError,
                                          ("Parent_Nuclei", "text, not numbers", "--no-join")),
    "image table only": Failing(_image_only, SchemaError, ("no Cytoplasm table", "--no-join")),
    "empty source folder": Failing(_empty_folder, NoTablesFoundError, ("empty", "celltable presets")),
    "missing source": Failing(lambda tmp: tmp / "nowhere", SourceNotFoundError, ("does not exist",)),
    "file for a CSV preset": Failing(_a_csv_file, NoTablesFoundError, ("is a file", "folder"),
                                     ("--preset", "cellprofiler_csv")),
    "unknown preset": Failing(lambda tmp: EXAMPLE_HUMAN, UnknownPresetError,
                              ("'nope'", "cellprofiler_csv"), ("--preset", "nope")),
}


@pytest.mark.parametrize("case", list(FAILING))
def test_a_bad_source_fails_with_a_named_error_and_one_line(tmp_path, case):
    bad = FAILING[case]
    src = bad.build(tmp_path)
    if bad.error is CelltableError:  # the exact class is the SQLite reader's business
        errors: tuple[type[CelltableError], ...] = (SourceReadError, SchemaError)
    else:
        errors = (bad.error,)
    out = tmp_path / "out"
    out.mkdir()
    dest = out / "py.parquet"
    with pytest.raises(errors) as raised:
        celltable.convert(src, dest, preset=bad.preset())
    assert all(w in str(raised.value) for w in bad.words), str(raised.value)
    assert not dest.exists() and list(out.iterdir()) == []
    dest = out / "cli.parquet"
    _fails(_convert(src, dest, *bad.args), dest, *bad.words)


# destinations ------------------------------------------------------------------------------


def test_a_destination_inside_the_source_is_refused(tmp_path):
    src = _csv_copy(tmp_path)
    with pytest.raises(DestinationError, match="inside the source"):
        celltable.convert(src, src / "out.parquet")
    _fails(_convert(src, src / "out.parquet"), src / "out.parquet", "inside the source")
    _fails(_convert(src, src / "tables", "--no-join"), src / "tables", "inside the source")
    _fails(_convert(src, src / "sub" / "out.parquet"), src / "out.parquet", "inside the source")
    assert sorted(p.name for p in src.iterdir()) == sorted(p.name for p in EXAMPLE_HUMAN.iterdir())


def test_a_destination_that_is_the_source_is_refused_even_with_overwrite(tmp_path):
    src = _sqlite_copy(tmp_path)
    before = src.read_bytes()
    result = _convert(src, src, "--preset", SQLITE, "--overwrite")
    assert result.exit_code == 1 and "is the source" in result.output
    assert src.read_bytes() == before


def test_a_destination_whose_parent_is_a_file_says_so(tmp_path):
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    dest = blocker / "out.parquet"
    with pytest.raises(DestinationError, match="is a file, not a folder"):
        celltable.convert(EXAMPLE_HUMAN, dest)
    result = _convert(EXAMPLE_HUMAN, dest)
    assert result.exit_code == 1
    lines = [ln for ln in result.output.splitlines() if ln.startswith("celltable: error:")]
    assert len(lines) == 1 and f"{blocker} is a file" in lines[0], result.output
    assert blocker.read_text() == "x"


def test_an_existing_destination_is_refused_and_kept(tmp_path):
    dest = tmp_path / "out.parquet"
    dest.write_text("precious")
    with pytest.raises(DestinationError, match="--overwrite"):
        celltable.convert(EXAMPLE_HUMAN, dest)
    result = _convert(EXAMPLE_HUMAN, dest)
    assert result.exit_code == 1 and "--overwrite" in result.output.splitlines()[-1]
    assert dest.read_text() == "precious"
    assert [p.name for p in tmp_path.iterdir()] == ["out.parquet"]


def test_a_read_only_destination_folder_fails_in_one_line(tmp_path, monkeypatch):
    ro = tmp_path / "read only"
    ro.mkdir()
    ro.chmod(0o555)
    if os.geteuid() == 0:  # root writes anywhere: refuse as the kernel would for anyone else
        mkdir = Path.mkdir

        def refuse(self, *args, **kwargs):
            if self.parent == ro:
                raise PermissionError(13, "Permission denied", str(self))
            return mkdir(self, *args, **kwargs)

        monkeypatch.setattr(Path, "mkdir", refuse)
    dest = ro / "out.parquet"
    try:
        with pytest.raises(DestinationError, match="Permission denied; choose a destination in "
                                                   "a writable folder"):
            celltable.convert(EXAMPLE_HUMAN, dest)
        _fails(_convert(EXAMPLE_HUMAN, dest), dest, "writable")
        assert list(ro.iterdir()) == []
    finally:
        ro.chmod(0o755)


# options -----------------------------------------------------------------------------------


def test_invalid_option_values_are_named_errors_in_python(tmp_path):
    dest = tmp_path / "out.parquet"
    with pytest.raises(InvalidOptionError, match="chunk_size"):
        celltable.convert(EXAMPLE_HUMAN, dest, chunk_size=0)
    with pytest.raises(InvalidOptionError, match="executor"):
        celltable.ConversionOptions(executor="bogus")
    with pytest.raises(ConfigurationError, match="512MB"):
        celltable.convert(EXAMPLE_HUMAN, dest, options=celltable.ConversionOptions(memory_limit="lots"))
    assert issubclass(InvalidOptionError, ValueError)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("args", "words"), [
    (("--executor", "bogus"), ("--executor", "threads")),
    (("--memory-limit", "lots"), ("'lots'", "2GB")),
    (("--log-format", "xml"), ("--log-format", "json")),
])
def test_invalid_option_values_fail_in_one_line(tmp_path, args, words):
    dest = tmp_path / "out.parquet"
    _fails(_convert(EXAMPLE_HUMAN, dest, *args), dest, *words)


@pytest.mark.parametrize("args", [("--chunk-size", "0"), ("--threads", "x"), ("--chunksize", "5")])
def test_option_values_the_parser_rejects_are_usage_errors(tmp_path, args):
    """Click's usage errors keep its convention: exit code 2 and the option named."""
    dest = tmp_path / "out.parquet"
    result = _convert(EXAMPLE_HUMAN, dest, *args)
    assert result.exit_code == 2 and args[0] in result.output
    assert list(tmp_path.iterdir()) == []


# odd sources that convert, the oddity counted ------------------------------------------------


def _python(src: Path, tmp: Path, **kwargs) -> celltable.ConversionResult:
    return celltable.convert(src, tmp / "py.parquet", **kwargs)


def _cli_line(src: Path, tmp: Path, *args: str) -> str:
    result = _convert(src, tmp / "cli.parquet", *args)
    assert result.exit_code == 0, result.output
    return next(ln for ln in result.output.splitlines() if "cli.parquet:" in ln)


def test_a_header_only_base_table_gives_an_empty_table(tmp_path):
    src = _csv_copy(tmp_path)
    _edit(src / "Cytoplasm.csv", _header_only)
    result = _python(src, tmp_path)
    (t,) = result.tables
    assert (t.rows_in, t.rows_out, t.dropped, t.unaccounted) == (0, 0, 0, 0)
    assert pq.read_metadata(tmp_path / "py.parquet").num_rows == 0
    assert "0 rows" in _cli_line(src, tmp_path)


def test_a_header_only_partner_table_drops_every_row_and_says_why(tmp_path):
    src = _csv_copy(tmp_path)
    _edit(src / "Cells.csv", _header_only)
    (t,) = _python(src, tmp_path).tables
    assert (t.rows_in, t.rows_out, t.dropped) == (289, 0, 289)
    assert dict(t.missing)["Cytoplasm.Parent_Cells -> Cells"] == 289
    assert "289 dropped (289 without Cells)" in _cli_line(src, tmp_path)


def test_an_empty_sqlite_compartment_drops_every_row_and_says_why(tmp_path):
    src = _sqlite_copy(tmp_path, "DELETE FROM Per_Cells")
    (t,) = _python(src, tmp_path, preset=SQLITE).tables
    assert (t.rows_in, t.rows_out, t.dropped, t.unaccounted) == (242, 0, 242, 0)
    assert "242 dropped (242 without Cells)" in _cli_line(src, tmp_path, "--preset", SQLITE)


def test_an_empty_sqlite_base_compartment_gives_an_empty_table(tmp_path):
    src = _sqlite_copy(tmp_path, "DELETE FROM Per_Cytoplasm")
    (t,) = _python(src, tmp_path, preset=SQLITE).tables
    assert (t.rows_in, t.rows_out, t.dropped) == (0, 0, 0)
    assert "0 rows" in _cli_line(src, tmp_path, "--preset", SQLITE)


def test_sqlite_without_the_image_table_converts_and_inspect_warns(tmp_path):
    from structlog.testing import capture_logs

    src = _sqlite_copy(tmp_path, "DROP TABLE Per_Image")
    with capture_logs() as logs:
        result = _python(src, tmp_path, preset=SQLITE)
    assert any(e["event"] == "plates_without_image_table" for e in logs)
    assert result.rows_out == 242 and "Image" not in dict(result.source_rows)
    assert "Metadata_Well" not in pq.read_schema(tmp_path / "py.parquet").names
    issues = [i.message for i in celltable.inspect(src, preset=SQLITE).issues]
    assert any("no image table" in m for m in issues), issues


def test_null_image_keys_are_dropped_and_counted(tmp_path):
    src = _sqlite_copy(tmp_path, "UPDATE Per_Cytoplasm SET ImageNumber = NULL WHERE rowid IN "
                                 "(SELECT rowid FROM Per_Cytoplasm LIMIT 5)")
    (t,) = _python(src, tmp_path, preset=SQLITE).tables
    assert (t.rows_in, t.rows_out, t.dropped, t.unaccounted) == (242, 237, 5, 0)
    csv_src = _csv_copy(tmp_path, "csv")
    _edit(csv_src / "Cytoplasm.csv", lambda t: t.replace("\n1,5,", "\n,5,", 1))
    assert "1 dropped" in _cli_line(csv_src, tmp_path)


def test_cytoplasm_whose_parent_cell_is_missing_is_dropped_and_counted(tmp_path):
    src = _csv_copy(tmp_path)
    _edit(src / "Cells.csv", lambda t: "\n".join(t.splitlines()[:1] + t.splitlines()[11:]) + "\n")
    (t,) = _python(src, tmp_path).tables
    assert (t.rows_in, t.rows_out, t.dropped, t.unaccounted) == (289, 279, 10, 0)
    assert dict(t.missing)["Cytoplasm.Parent_Cells -> Cells"] == 10
    assert "10 dropped (10 without Cells)" in _cli_line(src, tmp_path)


def test_duplicate_partner_keys_are_reported_as_extra_rows(tmp_path):
    src = _csv_copy(tmp_path)
    _edit(src / "Cells.csv", lambda t: t + "\n".join(t.splitlines()[1:4]) + "\n")
    (t,) = _python(src, tmp_path).tables
    assert (t.rows_in, t.rows_out, t.unaccounted) == (289, 292, -3)
    assert "3 extra rows from duplicate keys" in _cli_line(src, tmp_path)


def test_duplicate_base_keys_pass_through_and_inspect_warns(tmp_path):
    src = _csv_copy(tmp_path)
    _edit(src / "Cytoplasm.csv", lambda t: t + "\n".join(t.splitlines()[1:4]) + "\n")
    (t,) = _python(src, tmp_path).tables
    assert (t.rows_in, t.rows_out, t.dropped, t.unaccounted) == (292, 292, 0, 0)
    issues = [i.message for i in celltable.inspect(src).issues]
    assert any("3 Cytoplasm rows repeat" in m for m in issues), issues


def _same_table(src: Path, tmp: Path) -> None:
    """``src`` converts to the same table as ExampleHuman itself."""
    reference = tmp / "reference"
    shutil.copytree(EXAMPLE_HUMAN, reference / src.name)
    celltable.convert(reference / src.name, tmp / "reference.parquet")
    celltable.convert(src, tmp / "odd.parquet")
    assert pq.read_table(tmp / "odd.parquet").equals(pq.read_table(tmp / "reference.parquet"))


def test_a_semicolon_delimited_csv_is_read_with_its_delimiter(tmp_path):
    src = _csv_copy(tmp_path)
    _edit(src / "Cells.csv", lambda t: t.replace(",", ";"))
    _same_table(src, tmp_path)


def test_windows_line_endings_and_a_byte_order_mark_change_nothing(tmp_path):
    src = _csv_copy(tmp_path)
    _edit(src / "Cells.csv", lambda t: t.replace("\n", "\r\n"))
    (src / "Nuclei.csv").write_bytes(b"\xef\xbb\xbf" + (src / "Nuclei.csv").read_bytes())
    _same_table(src, tmp_path)


def test_duplicate_and_colliding_column_names_are_all_kept(tmp_path):
    src = _csv_copy(tmp_path)
    # a repeated name, and one that collides with AreaShape_Perimeter once prefixed
    _edit(src / "Cells.csv", lambda t: t.replace("AreaShape_Area,", "AreaShape_Perimeter,", 1)
          .replace("AreaShape_BoundingBoxArea,", "Cells_AreaShape_Perimeter,", 1))
    result = _python(src, tmp_path)
    names = pq.read_schema(tmp_path / "py.parquet").names
    perimeters = [n for n in names if n.startswith("Cells_AreaShape_Perimeter")]
    assert len(perimeters) == 3 and len(set(names)) == len(names), perimeters
    assert result.rows_out == 289


def test_sql_keywords_and_quotes_in_column_names_are_data(tmp_path):
    src = _csv_copy(tmp_path)
    _edit(src / "Cells.csv", lambda t: t.replace("AreaShape_Area,", "select,", 1)
          .replace("AreaShape_Perimeter,", '"a""b"" from x; --",', 1))
    assert _python(src, tmp_path).rows_out == 289
    names = pq.read_schema(tmp_path / "py.parquet").names
    assert {"Cells_select", 'Cells_a"b" from x; --'} <= set(names)


def test_paths_with_spaces_and_unicode(tmp_path):
    src = tmp_path / "plates ünïcödé" / "plate 1 ✓"
    shutil.copytree(EXAMPLE_HUMAN, src)
    dest = tmp_path / "out dir é" / "tableau à moi.parquet"
    result = celltable.convert(src, dest)
    assert result.rows_out == 289 and result.plates == ("plate 1 ✓",)
    assert pq.read_table(dest).column("Metadata_TableNumber")[0].as_py() == "plate 1 ✓"
    line = _cli_line(src.parent, tmp_path)
    assert "289 rows" in line


def test_a_symlink_loop_in_the_source_is_not_followed(tmp_path):
    src = _csv_copy(tmp_path)
    (src / "loop").symlink_to(src)
    (src / "a").symlink_to(src / "b")
    (src / "b").symlink_to(src / "a")
    assert _python(src, tmp_path).rows_out == 289
    assert "289 rows" in _cli_line(src, tmp_path)


def test_other_files_beside_the_tables_are_skipped(tmp_path):
    """The shared ExampleHuman folder as CellProfiler left it: images, a pipeline, and CSVs of
    other objects (PH3.csv, Experiment.csv)."""
    shared = REAL_DATA / "cellprofiler" / "ExampleHuman"
    src = tmp_path / "ExampleHuman"
    shutil.copytree(shared, src)
    assert _python(src, tmp_path).rows_out == 289
    skipped = celltable.inspect(src).skipped
    assert {Path(s).name for s in skipped} >= {"PH3.csv", "Experiment.csv"}


# property: generated plates ----------------------------------------------------------------


@st.composite
def _plates(draw) -> list[dict]:
    """Images of a few objects each: every cytoplasm object names a cell and a nucleus, some of
    which do not exist (orphans)."""
    images = []
    for image in range(1, draw(st.integers(1, 4)) + 1):
        cells = draw(st.integers(0, 4))
        nuclei = draw(st.integers(0, 4))
        cytoplasm = draw(st.lists(st.tuples(st.integers(1, 5), st.integers(1, 5)), max_size=5))
        images.append({"image": image, "cells": cells, "nuclei": nuclei, "cytoplasm": cytoplasm})
    return images


def _write_plate(folder: Path, images: list[dict]) -> set[tuple[int, int]]:
    """Write the plate as CellProfiler CSVs; the (image, object) keys a join keeps."""
    folder.mkdir(parents=True)
    rows = {"Image": ["ImageNumber,Metadata_Well,FileName_DNA"],
            "Cells": ["ImageNumber,ObjectNumber,AreaShape_Area"],
            "Nuclei": ["ImageNumber,ObjectNumber,AreaShape_Area"],
            "Cytoplasm": ["ImageNumber,ObjectNumber,Parent_Cells,Parent_Nuclei,AreaShape_Area"]}
    kept = set()
    for im in images:
        i = im["image"]
        rows["Image"].append(f"{i},A{i:02d},img{i}.tif")
        rows["Cells"] += [f"{i},{n},{i * 10 + n}.5" for n in range(1, im["cells"] + 1)]
        rows["Nuclei"] += [f"{i},{n},{i * 20 + n}.25" for n in range(1, im["nuclei"] + 1)]
        for n, (cell, nucleus) in enumerate(im["cytoplasm"], start=1):
            rows["Cytoplasm"].append(f"{i},{n},{cell},{nucleus},{n}.75")
            if cell <= im["cells"] and nucleus <= im["nuclei"]:
                kept.add((i, n))
    for name, lines in rows.items():
        (folder / f"{name}.csv").write_text("\n".join(lines) + "\n")
    return kept


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(images=_plates())
def test_converting_generated_plates_never_loses_or_duplicates_an_object(tmp_path, images):
    case = Path(tempfile.mkdtemp(dir=tmp_path))
    kept = _write_plate(case / "plate", images)
    base_rows = sum(len(im["cytoplasm"]) for im in images)
    tables = []
    for chunk_size, threads in ((1, 1), (1000, 2)):
        dest = case / f"out-{chunk_size}-{threads}.parquet"
        result = celltable.convert(case / "plate", dest, preset="cellprofiler_csv",
                                   chunk_size=chunk_size,
                                   options=celltable.ConversionOptions(threads=threads))
        (t,) = result.tables
        table = pq.read_table(dest)
        keys = list(zip(table.column("Metadata_ImageNumber").to_pylist(),
                        table.column("Metadata_ObjectNumber").to_pylist(), strict=True))
        assert sorted(keys) == sorted(kept) and len(set(keys)) == len(keys)
        assert (t.rows_in, t.rows_out, t.dropped, t.unaccounted) == (
            base_rows, len(kept), base_rows - len(kept), 0)
        tables.append(table)
    assert tables[0].equals(tables[1])


# user preset files ---------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "words"), [
    ('extends = "cellprofiler_csv"\nrelationships = ["Cytoplasm.Parent_Cels -> Cels"]\n',
     ("mine.toml", "'Cels'", "did you mean 'Cells'?")),
    ('extends = "cellprofiler_csv"\nrelationships = [\n"Cytoplasm -> Cells"\n"x"]\n',
     ("mine.toml", "not valid TOML", "line 4")),
])
def test_an_invalid_preset_file_fails_with_a_named_error_and_one_line(tmp_path, text, words):
    src = _csv_copy(tmp_path)
    preset_file = tmp_path / "mine.toml"
    preset_file.write_text(text)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(InvalidPresetError) as raised:
        celltable.convert(src, out / "py.parquet", preset=preset_file)
    assert all(w in str(raised.value) for w in words), str(raised.value)
    _fails(_convert(src, out / "cli.parquet", "--preset-file", preset_file), out / "cli.parquet",
           *words)
    assert list(out.iterdir()) == []
