"""The SQLite readers (adapters/sqlite_reader.py): the ADBC reader on every DuckDB, DuckDB's
extension where its wheel matches DuckDB. Each test runs on every reader installed here."""

from __future__ import annotations

import sqlite3

import duckdb
import pyarrow as pa
import pytest

from celltable.adapters import sqlite_reader
from celltable.adapters.duckdb_engine import DuckDBEngine
from celltable.adapters.sqlite_adbc import declared_type
from celltable.adapters.sqlite_reader import accelerator, open_sqlite, reader_name
from celltable.adapters.storage import LocalSourceLocator
from celltable.bootstrap import Settings
from celltable.domain.errors import ConfigurationError
from celltable.domain.presets import get_preset
from celltable.domain.schema import DataType

SQLITE = get_preset("cellprofiler_sqlite")
READERS = ["arrow", *(["extension"] if accelerator() else [])]
ROWS = 3000  # past the ADBC driver's batch of rows that it infers types from


@pytest.fixture(params=READERS)
def reader(request) -> str:
    return request.param


def _plate(path, *, late: dict[str, object] | None = None, shuffled: bool = False):
    """A plate of four tables over 3 images; Cells' ``Late`` column (declared float) is NULL for
    its first 2,999 rows; ``late`` sets Cells columns of the last row; ``shuffled`` stores each
    image's cells in descending object order (the primary key's index is in ascending order)."""
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE Per_Image (ImageNumber integer PRIMARY KEY, Image_Metadata_Well TEXT)")
    con.executemany("INSERT INTO Per_Image VALUES (?, ?)", [(i, f"A0{i}") for i in (1, 2, 3)])
    for name in ("Cells", "Cytoplasm", "Nuclei"):
        extra = ", Cells_Count integer, Cells_Late float" if name == "Cells" else ""
        con.execute(
            f"CREATE TABLE Per_{name} (ImageNumber integer, {name}_Number_Object_Number integer, "
            f"{name}_Parent_Cells integer, {name}_Parent_Nuclei integer, {name}_Area float{extra}, "
            f"PRIMARY KEY (ImageNumber, {name}_Number_Object_Number))")
        rows = []
        for i in (1, 2, 3):
            objects = range(1, ROWS // 3 + 1)
            for n in (reversed(objects) if shuffled else objects):
                rows.append((i, n, n, n, n * 1.5, *((n, None) if name == "Cells" else ())))
        if name == "Cells" and late:
            last = list(rows[-1])
            last[5], last[6] = late.get("count", last[5]), late.get("late", 7.25)
            rows[-1] = tuple(last)
        marks = ", ".join("?" * len(rows[0]))
        con.executemany(f"INSERT INTO Per_{name} VALUES ({marks})", rows)
    con.commit()
    con.close()
    return path


def _unit(path):
    return LocalSourceLocator().discover(str(path), SQLITE).plates[0]


@pytest.mark.parametrize("copy", [False, True])
def test_a_column_null_for_thousands_of_rows_keeps_its_declared_type(tmp_path, reader, copy):
    plate = _plate(tmp_path / "plate.sqlite", late={"late": 7.25})
    engine = DuckDBEngine(sqlite_reader=reader)
    staged = engine.stage(_unit(plate), SQLITE, str(tmp_path), copy=copy)
    try:
        cells = staged.table("Cells")
        assert staged.in_place is not copy
        assert cells.schema.type_of("Cells_Late") is DataType.FLOAT64
        assert cells.schema.type_of("Cells_Count") is DataType.INT64
        assert cells.rows_by_image == ((1, 1000), (2, 1000), (3, 1000))
        assert cells.not_cast == () and cells.widened == ()
    finally:
        engine.release(staged)


def test_values_unlike_their_declaration_are_cast_counted_and_widened(tmp_path, reader):
    """Past the first batch: a fraction in an integer column widens it; text in a float column
    is junk, counted and read as NULL. Read in place first, the plate is redone from a copy."""
    import celltable

    plate = _plate(tmp_path / "plate.sqlite", late={"count": 0.5, "late": "junk"})
    engine = DuckDBEngine(sqlite_reader=reader)
    staged = engine.stage(_unit(plate), SQLITE, str(tmp_path), copy=True)
    try:
        cells = staged.table("Cells")
        assert cells.widened == ("Cells_Count",)
        assert cells.not_cast == (("Cells_Late", 1),)
        assert cells.schema.type_of("Cells_Count") is DataType.FLOAT64
    finally:
        engine.release(staged)
    result = celltable.convert(plate, tmp_path / "out.parquet", preset="cellprofiler_sqlite")
    assert result.rows_out == ROWS


def test_a_stream_from_a_key_on_keeps_the_storage_order_not_the_indexs(tmp_path, reader):
    """A resumed conversion reads from an image on: the rows come in the order stored (rowid),
    even where the primary key's index would give them sorted."""
    plate = _plate(tmp_path / "plate.sqlite", shuffled=True)
    with duckdb.connect() as con:
        sqlite = open_sqlite(con, str(plate), reader)
        stream = sqlite.batches("Per_Nuclei", 512, start=("ImageNumber", 2))
        got = pa.Table.from_batches(list(stream), schema=stream.schema)
    assert got.column("ImageNumber").to_pylist() == [2] * 1000 + [3] * 1000
    assert got.column("Nuclei_Number_Object_Number").to_pylist()[:3] == [1000, 999, 998]


def test_declarations_read_as_duckdbs_sqlite_extension_reads_them(tmp_path, reader):
    """The types DuckDB's SQLite extension gives each declaration (read from it, DuckDB 1.5)."""
    seen = {"integer": "BIGINT", "float": "DOUBLE", "TEXT": "VARCHAR", "varchar(255)": "VARCHAR",
            "real": "DOUBLE", "double": "DOUBLE", "blob": "BLOB", "": "BLOB", "numeric": "DOUBLE",
            "boolean": "BIGINT", "date": "DATE", "timestamp": "TIMESTAMP",
            "datetime": "TIMESTAMP", "bigint": "BIGINT", "decimal(10,2)": "DOUBLE",
            "double precision": "DOUBLE", "CHARACTER(20)": "VARCHAR", "float8": "DOUBLE",
            "tinyint": "BIGINT", "foo": "VARCHAR"}
    assert {d: declared_type(d) for d in seen} == seen
    path = tmp_path / "types.sqlite"
    with sqlite3.connect(path) as con:
        con.execute("CREATE TABLE t (" + ", ".join(f"c{i} {d}" for i, d in enumerate(seen)) + ")")
    with duckdb.connect() as con:
        columns = open_sqlite(con, str(path), reader).columns("t")
    assert [t for _, t in columns] == list(seen.values())


def test_the_accelerator_is_used_only_when_its_version_equals_duckdbs(monkeypatch):
    def other_version(name: str) -> str:
        return "0.0.1"

    monkeypatch.setattr(sqlite_reader.metadata, "version", other_version)
    accelerator.cache_clear()
    try:
        assert accelerator() is None and reader_name() == "arrow"
        with duckdb.connect() as con, pytest.raises(ConfigurationError, match=duckdb.__version__):
            open_sqlite(con, ":memory:", "extension")
    finally:
        monkeypatch.undo()
        accelerator.cache_clear()


def test_the_reader_setting_is_checked_when_settings_are_read():
    assert Settings.resolve(1, None, {"CELLTABLE_SQLITE_READER": "Arrow"}).sqlite_reader == "arrow"
    assert Settings.resolve(1, None, {}).sqlite_reader == "auto"
    with pytest.raises(ConfigurationError, match="CELLTABLE_SQLITE_READER"):
        Settings.resolve(1, None, {"CELLTABLE_SQLITE_READER": "sqlite3"})
