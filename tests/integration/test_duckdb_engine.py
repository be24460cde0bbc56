from __future__ import annotations

import shutil

import pyarrow.parquet as pq
import pytest

from celltable.adapters.duckdb_engine import DuckDBEngine
from celltable.adapters.source_csv import CsvFormat
from celltable.adapters.storage import LocalSourceLocator
from celltable.domain.errors import SchemaError
from celltable.domain.presets import get_preset
from celltable.domain.schema import DataType

CSV = get_preset("cellprofiler_csv")
SQLITE = get_preset("cellprofiler_sqlite")


def test_staging_counts_rows_per_image_and_maps_types(tmp_path, nf1_sqlite):
    plate = LocalSourceLocator().discover(str(nf1_sqlite), SQLITE).plates[0]
    staged = DuckDBEngine().stage(plate, SQLITE, str(tmp_path))
    cyto = staged.table("Cytoplasm")
    assert cyto.rows == 242 == sum(n for _, n in cyto.rows_by_image)
    assert len(cyto.rows_by_image) == 32
    assert cyto.schema.type_of("Cytoplasm_AreaShape_Area") is DataType.FLOAT64
    assert staged.table("Image").schema.type_of("Image_Metadata_Well") is DataType.STRING


def test_names_with_quotes_spaces_and_keywords_are_quoted_not_pasted(tmp_path, example_human):
    from celltable import convert

    src = tmp_path / "src"
    shutil.copytree(example_human, src)
    text = (src / "Cells.csv").read_text()
    header, rest = text.split("\n", 1)
    cols = header.split(",")
    cols[2], cols[3] = '"a ""quoted"" name"', "select"
    (src / "Cells.csv").write_text(",".join(cols) + "\n" + rest)
    dest = tmp_path / "o.parquet"
    convert(src, dest)
    names = pq.read_schema(dest).names
    assert 'Cells_a "quoted" name' in names and "Cells_select" in names
    assert pq.read_metadata(dest).num_rows == 289


def test_a_text_image_key_is_a_named_error(tmp_path, example_human):
    src = tmp_path / "src"
    shutil.copytree(example_human, src)
    text = (src / "Cells.csv").read_text().splitlines()
    text[1] = "x" + text[1][1:]  # ImageNumber "x" instead of 1
    (src / "Cells.csv").write_text("\n".join(text) + "\n")
    plate = LocalSourceLocator().discover(str(src), CSV).plates[0]
    with pytest.raises(SchemaError, match="ImageNumber"):
        DuckDBEngine().stage(plate, CSV, str(tmp_path))


def test_a_sqlite_file_that_is_not_a_database_is_a_bad_file_of_the_layout(tmp_path):
    bad = tmp_path / "plate.sqlite"
    bad.write_bytes(b"this is not a database" * 100)
    layout = LocalSourceLocator().discover(str(bad), SQLITE)
    assert layout.plates == ()
    ((path, reason),) = [(b.path, b.reason) for b in layout.bad]
    assert path == str(bad) and "not a readable SQLite database" in reason


# CSV plates read in place ------------------------------------------------------------------


def _two_image_plate(folder, example_human, *, reversed_table: str | None = None):
    """ExampleHuman with its one image copied as image 2; ``reversed_table``'s file lists image 2
    first (out of image order)."""
    folder.mkdir()
    for path in example_human.iterdir():
        lines = path.read_text().splitlines()
        header, rows = lines[0], lines[1:]
        at = header.split(",").index("ImageNumber")

        def numbered(row: str, image: int, at: int = at) -> str:
            cells = row.split(",")
            cells[at] = str(image)
            return ",".join(cells)

        first, second = [numbered(r, 1) for r in rows], [numbered(r, 2) for r in rows]
        ordered = second + first if path.stem == reversed_table else first + second
        (folder / path.name).write_text("\n".join([header, *ordered]) + "\n")
    return folder


def test_a_csv_plate_in_image_order_is_read_in_place_as_the_copy_reads_it(tmp_path, example_human):
    plate = LocalSourceLocator().discover(str(example_human), CSV).plates[0]
    engine = DuckDBEngine()
    in_place = engine.stage(plate, CSV, str(tmp_path))
    copied = engine.stage(plate, CSV, str(tmp_path), copy=True)
    try:
        assert in_place.in_place and not copied.in_place
        assert in_place.tables == copied.tables  # same types, rows and rows per image
        assert in_place.table("Cytoplasm").rows_by_image == ((1, 289),)
    finally:
        engine.release(copied)


def test_an_out_of_order_csv_plate_is_copied_and_converts_as_an_ordered_one(tmp_path, example_human):
    from celltable import convert

    ordered = _two_image_plate(tmp_path / "ordered", example_human)
    shuffled = _two_image_plate(tmp_path / "shuffled", example_human, reversed_table="Cells")
    engine = DuckDBEngine()
    assert engine.stage(LocalSourceLocator().discover(str(ordered), CSV).plates[0], CSV,
                        str(tmp_path)).in_place
    staged = engine.stage(LocalSourceLocator().discover(str(shuffled), CSV).plates[0], CSV,
                          str(tmp_path))
    engine.release(staged)
    assert not staged.in_place
    assert staged.table("Cells").rows_by_image == ((1, 289), (2, 289))
    convert(ordered, tmp_path / "ordered.parquet", chunk_size=1)
    convert(shuffled, tmp_path / "shuffled.parquet", chunk_size=1)
    a, b = pq.read_table(tmp_path / "ordered.parquet"), pq.read_table(tmp_path / "shuffled.parquet")
    assert a.num_rows == 578
    assert a.drop_columns(["Metadata_TableNumber"]).equals(b.drop_columns(["Metadata_TableNumber"]))


def test_a_value_past_the_sniffed_sample_that_breaks_its_type_redoes_the_plate_from_a_copy(
        tmp_path, monkeypatch):
    from structlog.testing import capture_logs

    from celltable import convert

    plate = tmp_path / "plate"
    plate.mkdir()
    rows = [f"{i // 100 + 1},{i % 100 + 1},{i}" for i in range(30_000)]
    rows[25_000] = rows[25_000].rsplit(",", 1)[0] + ",n/a"  # past DuckDB's 20,480-row sample
    (plate / "Cells.csv").write_text("ImageNumber,ObjectNumber,AreaShape_Area\n"
                                     + "\n".join(rows) + "\n")
    with capture_logs() as logs:
        convert(plate, tmp_path / "in_place", join=False, chunk_size=5_000)
    events = [e["event"] for e in logs]
    assert "plate_read_in_place" in events and "plate_copied_after_all" in events
    monkeypatch.setattr(CsvFormat, "in_place", lambda self, engine, listed, preset: None)
    convert(plate, tmp_path / "copied", join=False, chunk_size=5_000)
    a = pq.read_table(tmp_path / "in_place" / "cells.parquet")
    b = pq.read_table(tmp_path / "copied" / "cells.parquet")
    assert a.num_rows == 30_000 and a.equals(b)
    assert a.schema.field("Cells_AreaShape_Area").type == "string"  # the whole file's type


# SQLite plates read in place ---------------------------------------------------------------


def _rewritten(src, dest, table: str, order: str) -> None:
    """A copy of the SQLite plate ``src`` whose ``table`` stores its rows ``ORDER BY order``."""
    import sqlite3

    shutil.copy(src, dest)
    with sqlite3.connect(dest) as con:
        con.execute(f"CREATE TABLE t AS SELECT * FROM {table} ORDER BY {order}")
        con.execute(f"DELETE FROM {table}")
        con.execute(f"INSERT INTO {table} SELECT * FROM t")
        con.execute("DROP TABLE t")


@pytest.mark.parametrize(("order", "in_place"), [
    ("ImageNumber, Cells_Number_Object_Number DESC", True),  # objects out of order: no matter
    ("ImageNumber DESC", False),  # images out of order: the plate is copied
])
def test_a_sqlite_plate_is_read_in_place_only_when_stored_in_image_order(
        tmp_path, nf1_sqlite, order, in_place):
    from celltable import convert

    plate = tmp_path / "plate.sqlite"
    _rewritten(nf1_sqlite, plate, "Per_Cells", order)
    listed = LocalSourceLocator().discover(str(plate), SQLITE).plates[0]
    staged = DuckDBEngine().stage(listed, SQLITE, str(tmp_path))
    assert staged.in_place is in_place
    assert dict(staged.table("Cells").rows_by_image) == dict(
        DuckDBEngine().stage(listed, SQLITE, str(tmp_path), copy=True).table("Cells").rows_by_image)
    convert(plate, tmp_path / "out.parquet", preset="cellprofiler_sqlite")
    convert(nf1_sqlite, tmp_path / "ordered.parquet", preset="cellprofiler_sqlite")
    got, expected = (pq.read_table(tmp_path / f"{n}.parquet") for n in ("out", "ordered"))
    assert got.num_rows == 242
    assert got.drop_columns(["Metadata_TableNumber"]).equals(
        expected.drop_columns(["Metadata_TableNumber"]))


@pytest.mark.parametrize("text", [
    "ImageNumber,ObjectNumber,Name,X\n1,1,\"a, b\",2.5\n1,2,c,3\n",  # RFC 4180, a quoted comma
    "ImageNumber;ObjectNumber;Name;X\n1;1;a;2,5\n1;2;c;3\n",  # semicolons, decimal commas
    "ImageNumber\tObjectNumber\tName\tX\n1\t1\t\"a\t2.5\n",  # tabs and a stray quote
])
def test_csv_files_are_sniffed_as_the_sniffer_reads_them_unaided(tmp_path, text):
    import duckdb

    from celltable.adapters.duckdb_stream import sniffed_csv

    path = tmp_path / "Cells.csv"
    path.write_text(text)
    con = duckdb.connect()
    unaided = con.execute(f"SELECT * FROM read_csv('{path}', header = true)")
    expected = (unaided.description, unaided.fetchall())
    read = con.execute(f"SELECT * FROM {sniffed_csv(con, str(path))}")
    assert (read.description, read.fetchall()) == expected
