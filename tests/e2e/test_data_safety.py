"""The bad-input corpus, continued: options that could destroy a source, rows that could be
lost or duplicated without a word, and sources that change while they are converted. Each case
with its outcome: a named error and one line on the command line (exit 1), the source and DEST
left exactly as they were; or a conversion whose oddity is counted and reported."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

import celltable
from celltable import DestinationError, SchemaError, SourceReadError
from celltable.domain.errors import NotWholeKeyError, SourceChangedError
from tests.conftest import EXAMPLE_HUMAN, NF1_SQLITE, REPO
from tests.e2e.test_cli import _convert, _fails
from tests.integration.test_cloud import s3, s3_endpoint  # noqa: F401 (fixtures)

SQLITE = "cellprofiler_sqlite"


def _tree(folder: Path) -> dict[str, bytes | None]:
    """Every path under ``folder`` with its bytes: the source, to compare before and after."""
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() and not p.is_symlink()
                                         else None) for p in sorted(folder.rglob("*"))}


def _sqlite(tmp: Path, name: str = "plate.sqlite") -> Path:
    shutil.copy(NF1_SQLITE, tmp / name)
    return tmp / name


def _plate(tmp: Path, name: str = "plate") -> Path:
    shutil.copytree(EXAMPLE_HUMAN, tmp / name)
    return tmp / name


# 1-3, 16: no path option writes over a source ---------------------------------------------


def test_a_report_path_naming_the_source_is_refused_and_the_source_kept(tmp_path):
    src = _sqlite(tmp_path)
    before = src.read_bytes()
    dest = tmp_path / "o.parquet"
    with pytest.raises(DestinationError, match="--report"):
        celltable.convert(src, dest, options=celltable.ConversionOptions(report_path=str(src)))
    _fails(_convert(src, dest, "--report", src), dest, "--report", "is the source")
    assert src.read_bytes() == before


def test_a_report_path_naming_dest_is_refused_and_the_output_kept(tmp_path):
    dest = tmp_path / "o.parquet"
    celltable.convert(NF1_SQLITE, dest)
    before = dest.read_bytes()
    result = _convert(NF1_SQLITE, dest, "--overwrite", "--report", dest)
    assert result.exit_code == 1 and "--report" in result.output
    assert dest.read_bytes() == before


@pytest.mark.parametrize("args", [("--no-join",), ("--partition-by", "plate")])
@pytest.mark.parametrize("spelling", ["plain", "dotdot", "symlink", "relative"])
def test_a_dest_folder_holding_the_source_is_refused_even_with_overwrite(
        tmp_path, monkeypatch, args, spelling):
    d = tmp_path / "d"
    src = _plate(d, "plate") if d.mkdir() is None else None
    (tmp_path / "alias").symlink_to(d)
    dest = {"plain": str(d), "dotdot": str(d / "plate" / ".."), "symlink": str(tmp_path / "alias"),
            "relative": "d"}[spelling]
    monkeypatch.chdir(tmp_path)
    before = _tree(d)
    with pytest.raises(DestinationError, match="lies inside the destination"):
        celltable.convert(src, dest, join=False, options=celltable.ConversionOptions(
            overwrite=True, partition_by="plate" if "plate" in args else None))
    result = _convert(src, dest, *args, "--overwrite")
    assert result.exit_code == 1 and "lies inside the destination" in result.output
    assert _tree(d) == before


def test_dest_naming_the_manifest_is_refused(tmp_path):
    _sqlite(tmp_path)
    manifest = tmp_path / "list.txt"
    manifest.write_text("plate.sqlite\n")
    result = _convert(manifest, manifest, "--overwrite")
    assert result.exit_code == 1 and "is the source" in result.output
    assert manifest.read_text() == "plate.sqlite\n"


@pytest.mark.parametrize("option", ["--staging-dir", "--local-cache-dir"])
def test_a_working_folder_inside_the_source_is_refused_and_nothing_made_there(tmp_path, option):
    src = _plate(tmp_path)
    before = _tree(src)
    dest = tmp_path / "o.parquet"
    _fails(_convert(src, dest, option, src / "work" / "here"), dest, option, "lies inside")
    assert _tree(src) == before


def test_a_failed_run_removes_the_folders_it_made_for_dest(tmp_path):
    src = _plate(tmp_path)
    (src / "Cytoplasm.csv").write_bytes(b"")  # fails once staging has begun
    dest = tmp_path / "new" / "deeper" / "o.parquet"
    result = _convert(src, dest, "--staging-dir", tmp_path / "scratch" / "x")
    assert result.exit_code == 1 and "empty" in result.output
    assert not (tmp_path / "new").exists() and not (tmp_path / "scratch").exists()


# 4-5: linked plate folders, plates listed twice -------------------------------------------


def test_a_linked_plate_folder_is_converted_and_inspected(tmp_path):
    plates = tmp_path / "plates"
    _plate(plates, "a")
    elsewhere = _plate(tmp_path / "staged", "b")
    (plates / "b").symlink_to(elsewhere, target_is_directory=True)
    result = celltable.convert(plates, tmp_path / "o.parquet")
    assert result.rows_out == 578 and result.plates == ("a", "b")
    assert [u for u in celltable.inspect(plates).plates] and len(celltable.inspect(plates).plates) == 2


def test_a_link_to_a_plate_read_already_is_passed_over_and_reported(tmp_path):
    plates = tmp_path / "plates"
    _plate(plates, "a")
    (plates / "again").symlink_to(plates / "a", target_is_directory=True)
    result = celltable.convert(plates, tmp_path / "o.parquet")
    assert result.rows_out == 289
    (skipped,) = result.report.skipped
    assert skipped.path.endswith("again") and "read already as a" in skipped.reason


@pytest.mark.parametrize("second", ["link", "dotdot"])
def test_a_manifest_listing_one_plate_twice_under_two_spellings_is_refused(tmp_path, second):
    _sqlite(tmp_path)
    (tmp_path / "link.sqlite").symlink_to(tmp_path / "plate.sqlite")
    (tmp_path / "sub").mkdir()
    other = {"link": "link.sqlite", "dotdot": "sub/../plate.sqlite"}[second]
    manifest = tmp_path / "list.txt"
    manifest.write_text(f"plate.sqlite\n{other}\n")
    with pytest.raises(SourceReadError, match="lists one source twice"):
        celltable.convert(manifest, tmp_path / "o.parquet")


# 6: DEST appearing while a run converts ----------------------------------------------------


@pytest.mark.parametrize("join", [True, False])
def test_dest_appearing_meanwhile_is_kept_and_the_run_fails(tmp_path, join):
    dest = tmp_path / ("o.parquet" if join else "tables")

    def other_run_finishes(progress):
        if progress.stage == "staging" and not dest.exists():
            if join:
                dest.write_text("the other run's output")
            else:
                dest.mkdir()
                (dest / "theirs.parquet").write_text("the other run's output")

    with pytest.raises(DestinationError, match="appeared while this conversion ran"):
        celltable.convert(EXAMPLE_HUMAN, dest, join=join, progress=other_run_finishes)
    kept = dest if join else dest / "theirs.parquet"
    assert kept.read_text() == "the other run's output"
    assert [p.name for p in tmp_path.iterdir()] == [dest.name]


def test_with_overwrite_dest_appearing_meanwhile_is_replaced(tmp_path):
    dest = tmp_path / "o.parquet"
    result = celltable.convert(EXAMPLE_HUMAN, dest, options=celltable.ConversionOptions(
        overwrite=True), progress=lambda p: dest.exists() or dest.write_text("x"))
    assert pq.read_metadata(result.dest_path).num_rows == 289


# 7-9: keys that are not whole, sources that change, NULL object numbers -------------------


def _long_plate(folder: Path, rows: int, fraction_at: int | None = None) -> Path:
    """One image of ``rows`` cells, nuclei and cytoplasm (cytoplasm n is cell n's); the parent
    reference of cytoplasm row ``fraction_at`` is ``n + 0.5``: far past the sniffer's sample."""
    folder.mkdir(parents=True)
    (folder / "Image.csv").write_text("ImageNumber,Metadata_Well\n1,A01\n")
    for name in ("Cells", "Nuclei"):
        (folder / f"{name}.csv").write_text(
            "ImageNumber,ObjectNumber,AreaShape_Area\n"
            + "".join(f"1,{n},{n}.5\n" for n in range(1, rows + 1)))
    lines = ["ImageNumber,ObjectNumber,Parent_Cells,Parent_Nuclei,AreaShape_Area\n"]
    for n in range(1, rows + 1):
        parent = f"{n}.5" if n == fraction_at else str(n)
        lines.append(f"1,{n},{parent},{n},{n}.25\n")
    (folder / "Cytoplasm.csv").write_text("".join(lines))
    return folder


@pytest.mark.parametrize("in_order", [True, False])
def test_a_fraction_in_a_parent_reference_past_the_sample_is_named(tmp_path, in_order):
    src = _long_plate(tmp_path / "plate", 25_000, fraction_at=23_001)
    if not in_order:  # stored out of image order: copied, then checked
        lines = (src / "Cytoplasm.csv").read_text().splitlines(keepends=True)
        (src / "Cytoplasm.csv").write_text(lines[0] + "".join(reversed(lines[1:])))
    dest = tmp_path / "o.parquet"
    with pytest.raises(NotWholeKeyError, match=r"Parent_Cells holds 23001\.5") as raised:
        celltable.convert(src, dest)
    assert isinstance(raised.value, SchemaError)
    _fails(_convert(src, dest), dest, "Cytoplasm.csv", "Parent_Cells", "not whole numbers")


def test_a_csv_file_shortened_while_converting_is_named(tmp_path):
    src = _long_plate(tmp_path / "plate", 3_000)
    cytoplasm = src / "Cytoplasm.csv"

    def shorten(progress):
        if progress.stage == "staging":  # surveyed; its rows not read yet
            cytoplasm.write_text("".join(cytoplasm.read_text().splitlines(keepends=True)[:-1830]))

    dest = tmp_path / "o.parquet"
    with pytest.raises(SourceChangedError, match="changed while it was converted"):
        celltable.convert(src, dest, progress=shorten)
    assert not dest.exists()


def test_a_source_file_touched_while_converting_is_named(tmp_path):
    src = _sqlite(tmp_path)

    def touch(progress):
        if progress.stage == "staging":
            os.utime(src, (1, 1))

    with pytest.raises(SourceChangedError, match=r"plate\.sqlite changed"):
        celltable.convert(src, tmp_path / "o.parquet", progress=touch)


def test_null_base_object_numbers_are_counted_and_reported(tmp_path):
    src = _plate(tmp_path)
    lines = (src / "Cytoplasm.csv").read_text().splitlines(keepends=True)
    for i in (3, 7):
        lines[i] = lines[i].replace(f"1,{i},", "1,,", 1)
    (src / "Cytoplasm.csv").write_text("".join(lines))
    result = celltable.convert(src, tmp_path / "o.parquet")
    (t,) = result.tables
    assert t.null_objects == 2 and t.plates[0].null_objects == 2
    report = json.loads(Path(result.report_path).read_text())
    assert report["outputs"][0]["null_object_numbers"] == 2
    cli = _convert(src, tmp_path / "cli.parquet")
    assert "2 without an object number (NULL)" in cli.output


# 10-12: validate finds damage --------------------------------------------------------------


def _rewritten(src: Path, dest: Path, change, metadata=lambda m: m) -> Path:
    """``src`` with its table changed and celltable's records kept (or changed)."""
    import pyarrow as pa

    meta = {k.decode(): v.decode() for k, v in pq.read_metadata(src).metadata.items()
            if k.startswith((b"celltable", b"data-"))}
    table = change(pq.read_table(src).replace_schema_metadata(None))
    with pq.ParquetWriter(dest, table.schema) as w:
        w.write_table(pa.Table.from_batches(table.to_batches(), table.schema))
        w.add_key_value_metadata(metadata(meta))
    return dest


def _failed(dest: Path) -> dict[str, str]:
    report = celltable.validate(dest)
    assert not report.ok
    return {c.name: c.detail for t in report.tables for c in t.checks if c.ok is False}


@pytest.fixture(scope="module")
def output(tmp_path_factory) -> Path:
    """NF1 converted: 242 rows with Metadata_Well and Cells_AreaShape_Area."""
    return Path(celltable.convert(NF1_SQLITE, tmp_path_factory.mktemp("out") / "o.parquet")
                .dest_path)


def _set(table, name: str, values):
    import pyarrow as pa

    i = table.schema.get_field_index(name)
    return table.set_column(i, name, pa.array(values, table.schema.field(name).type))


FEATURE = "Cells_AreaShape_Area"


@pytest.mark.parametrize("damage", ["feature x10", "two rows swapped", "well edited"])
def test_validate_names_the_damaged_column_and_row_group(tmp_path, output, damage):
    def change(t):
        if damage == "feature x10":
            return _set(t, FEATURE, [v * 10 for v in t.column(FEATURE).to_pylist()])
        if damage == "two rows swapped":
            v = t.column(FEATURE).to_pylist()
            v[0], v[1] = v[1], v[0]
            return _set(t, FEATURE, v)
        wells = t.column("Metadata_Well").to_pylist()
        return _set(t, "Metadata_Well", ["B99", *wells[1:]])

    column = "Metadata_Well" if damage == "well edited" else FEATURE
    failed = _failed(_rewritten(output, tmp_path / "bad.parquet", change))
    assert set(failed) == {"column digests"}
    assert column in failed["column digests"] and "row group 0" in failed["column digests"]
    assert _convert_validate(tmp_path / "bad.parquet").exit_code == 1


def _convert_validate(path: Path):
    from typer.testing import CliRunner

    from celltable.cli import app

    return CliRunner().invoke(app, ["validate", str(path)])


def test_a_flipped_byte_in_compressed_feature_data_is_found(tmp_path, output):
    damaged = tmp_path / "flipped.parquet"
    shutil.copy(output, damaged)
    meta = pq.read_metadata(damaged)
    names = meta.schema.to_arrow_schema().names
    chunk = meta.row_group(0).column(names.index(FEATURE))
    at = chunk.data_page_offset + chunk.total_compressed_size - 8  # inside the page's values
    data = bytearray(damaged.read_bytes())
    data[at] ^= 0x10
    damaged.write_bytes(bytes(data))
    try:
        failed = _failed(damaged)
    except SourceReadError as e:  # the codec itself noticed: named, exit 1 on the CLI
        assert "not a readable Parquet file" in str(e)
    else:
        assert any(FEATURE in d for d in failed.values()), failed
    assert _convert_validate(damaged).exit_code == 1


def test_a_missing_schema_record_in_a_current_file_fails(tmp_path, output):
    def drop_schema(meta):
        prov = json.loads(meta["celltable.provenance"])
        del prov["schema"]
        return {**meta, "celltable.provenance": json.dumps(prov)}

    retyped = _rewritten(output, tmp_path / "r.parquet",
                         lambda t: _set(t, FEATURE, [float(v) for v in t.column(FEATURE).to_pylist()])
                         .cast(t.schema.set(t.schema.get_field_index(FEATURE),
                                            t.schema.field(FEATURE).with_type(
                                                __import__("pyarrow").float32()))),
                         drop_schema)
    failed = _failed(retyped)
    assert "always records it" in failed["schema"]


@pytest.mark.parametrize("damage", ["plate file missing", "table file missing", "files swapped"])
def test_validate_checks_a_folder_against_its_manifest(tmp_path, three_example_plates, damage):
    if damage == "plate file missing":
        dest = Path(celltable.convert(three_example_plates, tmp_path / "parts", options=celltable
                                      .ConversionOptions(partition_by="plate")).dest_path)
        (dest / "plate_b.parquet").unlink()
        words = "missing plate_b.parquet"
    else:
        dest = Path(celltable.convert(three_example_plates, tmp_path / "tables", join=False)
                    .dest_path)
        if damage == "table file missing":
            (dest / "nuclei.parquet").unlink()
            words = "missing nuclei.parquet"
        else:
            (dest / "cells.parquet").rename(dest / "tmp.parquet")
            (dest / "nuclei.parquet").rename(dest / "cells.parquet")
            (dest / "tmp.parquet").rename(dest / "nuclei.parquet")
            words = "swapped cells.parquet, nuclei.parquet"
    failed = _failed(dest)
    assert words in failed["files"]


# 13-14: hostile NPZ headers and preset files -----------------------------------------------


def _npy_header(shape: tuple[int, ...], body: bytes = b"") -> bytes:
    header = repr({"descr": "<f4", "fortran_order": False, "shape": shape}).encode()
    header += b" " * (63 - (len(header) + 10) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header + body


@pytest.mark.parametrize(("shape", "words"), [
    ((-2, -2), "impossible shape"),
    ((10**20, 0), "locations.npy has shape"),
    ((4, 3), "declares (4, 3) values (48 bytes) but holds 0 bytes"),
])
def test_impossible_npz_shapes_are_named_errors(tmp_path, shape, words):
    import zipfile

    plate = tmp_path / "P1"
    plate.mkdir()
    with zipfile.ZipFile(plate / "A01_1.npz", "w") as zf:
        zf.writestr("features.npy", _npy_header(shape))
        zf.writestr("locations.npy", _npy_header((2, 2), bytes(16)))
    with pytest.raises(SourceReadError) as raised:
        celltable.convert(tmp_path, tmp_path.parent / f"{tmp_path.name}.parquet")
    assert words in str(raised.value)


def test_a_site_declaring_no_cells_adds_no_feature_columns(tmp_path):
    import zipfile

    plate = tmp_path / "src" / "P1"
    plate.mkdir(parents=True)
    with zipfile.ZipFile(plate / "A01_1.npz", "w") as zf:
        zf.writestr("features.npy", _npy_header((0, 200_000)))
        zf.writestr("locations.npy", _npy_header((0, 2)))
    with zipfile.ZipFile(plate / "A01_2.npz", "w") as zf:
        zf.writestr("features.npy", _npy_header((2, 3), bytes(24)))
        zf.writestr("locations.npy", _npy_header((2, 2), bytes(16)))
    result = celltable.convert(tmp_path / "src", tmp_path / "o.parquet")
    assert result.rows_out == 2 and result.tables[0].columns < 20


@pytest.mark.parametrize(("content", "words"), [
    ("deep", "nests arrays or tables too deeply"),
    ("/dev/zero", "larger than 1024 KiB"),
])
def test_hostile_preset_files_are_invalid_preset_errors(tmp_path, content, words):
    path = Path("/dev/zero") if content == "/dev/zero" else tmp_path / "deep.toml"
    if content == "deep":
        path.write_text("x = " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(celltable.InvalidPresetError, match=words):
        celltable.load_preset(path)
    dest = tmp_path / "o.parquet"
    _fails(_convert(EXAMPLE_HUMAN, dest, "--preset-file", path), dest, words)


# 15: SIGTERM -------------------------------------------------------------------------------


def test_sigterm_removes_the_staging_and_leaves_dest_as_it_was(tmp_path):
    """The command is stopped by SIGTERM while it converts (sent by itself when it is about to
    publish, so the timing is exact): exit 143, nothing at DEST, no staging folder left."""
    script = (
        "import os, signal, sys\n"
        "from celltable.adapters import storage\n"
        "storage.LocalDestination.publish = lambda self: os.kill(os.getpid(), signal.SIGTERM)\n"
        "from celltable.cli import main\n"
        "sys.argv = ['celltable', 'convert', sys.argv[1], sys.argv[2], '--staging-dir', sys.argv[3]]\n"
        "main()\n")
    dest, staging = tmp_path / "o.parquet", tmp_path / "staging"
    proc = subprocess.run([sys.executable, "-c", script, str(EXAMPLE_HUMAN), str(dest), str(staging)],
                          capture_output=True, text=True, cwd=REPO, timeout=300)
    assert proc.returncode == 128 + signal.SIGTERM, proc.stderr[-2000:]
    assert "stopped by SIGTERM" in proc.stderr
    assert [p.name for p in tmp_path.iterdir()] == []


# 17: messages that say what happened -------------------------------------------------------


def test_a_locked_sqlite_file_says_a_writer_holds_it(tmp_path):
    import sqlite3

    src = _sqlite(tmp_path)
    writer = sqlite3.connect(src, isolation_level=None)
    writer.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(SourceReadError, match="locked by a program writing it") as raised:
            celltable.convert(src, tmp_path / "o.parquet", preset=SQLITE)
        assert "copy it again" not in str(raised.value)
    finally:
        writer.execute("ROLLBACK")
        writer.close()


def test_a_crashed_writers_journal_is_named(tmp_path):
    import sqlite3

    live = _sqlite(tmp_path, "live.sqlite")
    writer = sqlite3.connect(live, isolation_level=None)
    writer.execute("PRAGMA cache_size = 1")
    writer.execute("BEGIN EXCLUSIVE")
    writer.execute("DELETE FROM Per_Cells")
    crashed = tmp_path / "crashed"
    crashed.mkdir()
    shutil.copy(live, crashed / "plate.sqlite")  # as a writer killed mid-transaction left it
    shutil.copy(tmp_path / "live.sqlite-journal", crashed / "plate.sqlite-journal")
    writer.execute("ROLLBACK")
    writer.close()
    with pytest.raises(SourceReadError, match="journal") as raised:
        celltable.convert(crashed / "plate.sqlite", tmp_path / "o.parquet", preset=SQLITE)
    assert "copy it again" not in str(raised.value)


def test_a_fractional_sqlite_image_number_is_named_without_duckdb_settings(tmp_path):
    import sqlite3

    src = _sqlite(tmp_path)
    with sqlite3.connect(src) as con:
        con.execute("UPDATE Per_Cells SET ImageNumber = 1.5 WHERE rowid = 3")
    con.close()
    with pytest.raises(SchemaError, match="ImageNumber") as raised:
        celltable.convert(src, tmp_path / "o.parquet", preset=SQLITE)
    assert "SET " not in str(raised.value) and "sqlite_all_varchar" not in str(raised.value)


def test_a_second_resume_run_on_one_dest_says_another_run_holds_it(tmp_path):
    from celltable.adapters.local_destination import hold_lock

    dest = tmp_path / "o.parquet"
    resume = tmp_path / ".o.parquet.celltable-resume"
    resume.mkdir()
    lock = hold_lock(resume / ".lock")  # as a first run holds it while it converts
    assert lock is not None
    try:
        result = _convert(EXAMPLE_HUMAN, dest, "--resume")
    finally:
        os.close(lock)
    assert result.exit_code == 1 and "another run" in result.output and "resume folder" in result.output
    assert not dest.exists() and [p.name for p in tmp_path.iterdir()] == [resume.name]
    assert _convert(EXAMPLE_HUMAN, dest, "--resume").exit_code == 0


def test_a_csv_header_repeating_a_name_numbers_the_repeat_2_as_documented(tmp_path):
    src = _plate(tmp_path)
    cells = src / "Cells.csv"
    cells.write_text(cells.read_text().replace("AreaShape_Area,", "AreaShape_Perimeter,", 1))
    names = pq.read_schema(celltable.convert(src, tmp_path / "o.parquet").dest_path).names
    assert [n for n in names if n.startswith("Cells_AreaShape_Perimeter")] == [
        "Cells_AreaShape_Perimeter", "Cells_AreaShape_Perimeter_2"]
    docs = (REPO / "docs" / "output.md").read_text()
    assert "the later one gets `_2`" in docs


# 2, in the cloud: a DEST prefix holding the source ------------------------------------------


def test_an_s3_dest_holding_the_source_is_refused_and_nothing_deleted(s3, tmp_path):  # noqa: F811
    from tests.integration.test_cloud import SRC, _keys, _put_folder

    _put_folder(s3, EXAMPLE_HUMAN, SRC, "proj/p1")
    before = _keys(s3, SRC)
    options = celltable.ConversionOptions(overwrite=True, local_cache_dir=str(tmp_path / "cache"))
    with pytest.raises(DestinationError, match="lies inside the destination"):
        celltable.convert(f"s3://{SRC}/proj/p1", f"s3://{SRC}/proj", join=False, options=options)
    result = _convert(f"s3://{SRC}/proj/p1", f"s3://{SRC}/proj", "--no-join", "--overwrite",
                      "--local-cache-dir", tmp_path / "cache")
    assert result.exit_code == 1 and "lies inside the destination" in result.output
    assert _keys(s3, SRC) == before


def test_a_download_cache_inside_a_local_dest_is_refused_before_any_download(
        s3, tmp_path, monkeypatch):  # noqa: F811
    """The cloud plates' download cache, set by CELLTABLE_LOCAL_CACHE_DIR as by
    --local-cache-dir, inside the DEST that --overwrite replaces: refused before a byte is
    downloaded into it (plates are downloaded as they are listed, before DEST is prepared)."""
    from tests.integration.test_cloud import SRC, _put_folder

    _put_folder(s3, EXAMPLE_HUMAN, SRC, "proj/p1")
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "kept.txt").write_text("an earlier output")
    monkeypatch.setenv("CELLTABLE_LOCAL_CACHE_DIR", str(dest / "cache"))
    options = celltable.ConversionOptions(overwrite=True, partition_by="plate")
    with pytest.raises(DestinationError, match=r"CELLTABLE_LOCAL_CACHE_DIR.*inside the destination"):
        celltable.convert(f"s3://{SRC}/proj/p1", dest, preset="cellprofiler_csv", options=options)
    result = _convert(f"s3://{SRC}/proj/p1", dest, "--overwrite", "--partition-by", "plate")
    assert result.exit_code == 1 and "CELLTABLE_LOCAL_CACHE_DIR" in result.output
    assert _tree(dest) == {"kept.txt": b"an earlier output"}  # nothing downloaded, DEST kept
    # set for cloud work, the variable is not in the way of a local conversion
    celltable.convert(EXAMPLE_HUMAN, dest, preset="cellprofiler_csv", options=options)


def test_an_s3_dest_appearing_meanwhile_is_kept(s3, tmp_path):  # noqa: F811
    from tests.integration.test_cloud import OUT

    def other_run_finishes(progress):
        if progress.stage == "staging":
            s3.put_object(Bucket=OUT, Key="o.parquet", Body=b"theirs")

    with pytest.raises(DestinationError, match="appeared while this conversion ran"):
        celltable.convert(EXAMPLE_HUMAN, f"s3://{OUT}/o.parquet", progress=other_run_finishes,
                          options=celltable.ConversionOptions(
                              local_cache_dir=str(tmp_path / "cache")))
    assert s3.get_object(Bucket=OUT, Key="o.parquet")["Body"].read() == b"theirs"
