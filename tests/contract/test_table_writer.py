"""The ``TableWriter`` / ``TableSink`` ports' behaviour, on the fake and on every output format
registered in ``adapters/formats.py`` (a format registered there is under this suite at once).

Each table is read back through its format's ``OutputReader``: its rows, its columns, the
metadata it was closed with, and every column's values, compared through the digests
``celltable validate`` uses (computed here from the rows written, independently of the writer).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pytest

from celltable.adapters import formats
from celltable.adapters.arrow_types import arrow_schema
from celltable.adapters.column_digest import ColumnDigester
from celltable.adapters.parquet_checks import TableDigest
from celltable.domain.errors import SchemaError
from celltable.domain.formats import PARQUET
from celltable.domain.ports import OutputReader, TableWriter
from celltable.domain.schema import Column, DataType, Role
from celltable.domain.validation import (
    CHECKSUM_KEY,
    COLUMNS_KEY,
    KEY_COLUMNS,
    PROVENANCE_KEY,
    Checksum,
    ColumnDigests,
    check_folder,
)
from tests.fakes import FakeOutputReader, FakeWriter

COLUMNS = (
    Column("Metadata_TableNumber", DataType.STRING, Role.KEY),
    Column("Metadata_ImageNumber", DataType.INT64, Role.KEY),
    Column("Metadata_ObjectNumber", DataType.INT64, Role.KEY),
    Column("Metadata_Well", DataType.STRING, Role.METADATA),
    Column("Metadata_Site", DataType.INT64, Role.METADATA),
    Column("Image_FileName_DNA", DataType.STRING, Role.IMAGE),
    Column("Cells_AreaShape_Area", DataType.FLOAT64, Role.FEATURE, "Cells"),
    Column("Nuclei_Intensity_MeanIntensity_DNA", DataType.FLOAT64, Role.FEATURE, "Nuclei"),
)


def _chunk(plate: str, images: range, per_image: int = 3) -> pa.Table:
    """Rows of ``images``, with NULLs in a text and an integer metadata column."""
    rows = [{"Metadata_TableNumber": plate, "Metadata_ImageNumber": i, "Metadata_ObjectNumber": o,
             "Metadata_Well": None if o == 2 else f"B{i:02d}", "Metadata_Site": None if i % 2 else o,
             "Image_FileName_DNA": f"{plate}-{i}.tif", "Cells_AreaShape_Area": 10.0 * i + o,
             "Nuclei_Intensity_MeanIntensity_DNA": 0.5 / (i + o)}
            for i in images for o in range(1, per_image + 1)]
    return pa.Table.from_pylist(rows, schema=arrow_schema(COLUMNS))


CHUNKS = (_chunk("p1", range(1, 3)), _chunk("p1", range(3, 3)), _chunk("p2", range(1, 4), 2))
WRITTEN = pa.concat_tables(CHUNKS)
METADATA = {PROVENANCE_KEY: json.dumps({"rows_out": WRITTEN.num_rows,
                                        "schema": [[c.name, c.type.value] for c in COLUMNS]}),
            "celltable.preset": "cellprofiler_csv"}


@dataclass
class Format:
    """A format under test: its writer and reader, what its sinks take, and how its stored
    values are fingerprinted (the reader's digests, or for the fake its rows as Arrow)."""

    name: str
    writer: TableWriter
    reader: OutputReader
    suffix: str

    def feed(self, table: pa.Table) -> object:
        return table.to_pylist() if self.name == "fake" else table

    def remove(self, path: str) -> None:
        if self.name == "fake":
            del self.writer.files[path]  # type: ignore[attr-defined]
        elif Path(path).is_dir():
            shutil.rmtree(path)
        else:
            Path(path).unlink()

    def digests(self, path: str) -> ColumnDigests:
        if self.name == "fake":
            rows = self.writer.files[path]["rows"]  # type: ignore[attr-defined]
            return _digests(pa.Table.from_pylist(rows, schema=arrow_schema(COLUMNS)), None)
        recorded = ColumnDigests.from_json(dict(self.reader.scan(path, None).metadata)[COLUMNS_KEY])
        found = self.reader.scan(path, None, recorded.group_rows).column_digests
        assert found is not None
        return found


def _digests(table: pa.Table, group_rows: tuple[int, ...] | None) -> ColumnDigests:
    digester = ColumnDigester(table.schema)
    digester.feed(table.to_batches(), group_rows or ())
    return digester.digests()


REAL = [r.format.name for r in formats.REGISTRY]


def _format(name: str) -> Format:
    if name == "fake":
        writer = FakeWriter()
        return Format("fake", writer, FakeOutputReader(writer), ".fake")
    fmt = next(f for f in formats.FORMATS if f.name == name)
    # a warehouse format's writer writes the profiles' data file (Parquet), not DEST itself
    suffix = PARQUET.suffix if fmt.warehouse else fmt.suffix
    return Format(name, formats.writer(name), formats.reader(name), suffix)


@pytest.fixture(params=["fake", *REAL])
def output(request) -> Format:
    return _format(request.param)


def _write(output: Format, path: str, chunks: tuple[pa.Table, ...] = CHUNKS) -> int:
    sink = output.writer.create(path, COLUMNS, rows=sum(c.num_rows for c in chunks))
    for chunk in chunks:
        sink.write(output.feed(chunk))
    return sink.close(METADATA)


def test_close_returns_the_rows_written_over_every_chunk(output, tmp_path):
    assert _write(output, str(tmp_path / f"cells{output.suffix}")) == WRITTEN.num_rows == 12


def test_a_table_reads_back_with_its_rows_columns_and_metadata(output, tmp_path):
    path = str(tmp_path / f"cells{output.suffix}")
    _write(output, path)
    scan = output.reader.scan(path, None)
    assert scan.footer_rows == WRITTEN.num_rows
    # every column, typed as created and in the same order (a format may add its own)
    read = [(c.name, c.type) for c in scan.columns]
    assert [c for c in read if c[0] in WRITTEN.column_names] == [(c.name, c.type) for c in COLUMNS]
    meta = dict(scan.metadata)
    assert meta["celltable.preset"] == "cellprofiler_csv"
    assert json.loads(meta[PROVENANCE_KEY])["rows_out"] == WRITTEN.num_rows


def test_every_value_written_reads_back_unchanged(output, tmp_path):
    path = str(tmp_path / f"cells{output.suffix}")
    _write(output, path)
    found = output.digests(path)
    expected = _digests(WRITTEN, found.group_rows)
    assert sum(found.group_rows) == WRITTEN.num_rows
    assert [c for c in found.columns if c[0] in WRITTEN.column_names] == list(expected.columns)


def test_a_table_without_rows_reads_back_empty_with_its_columns(output, tmp_path):
    path = str(tmp_path / f"empty{output.suffix}")
    assert _write(output, path, chunks=(WRITTEN.slice(0, 0),)) == 0
    scan = output.reader.scan(path, None)
    assert scan.footer_rows == 0
    assert {c.name for c in COLUMNS} <= {c.name for c in scan.columns}


def test_tables_in_subfolders_are_created_with_their_folder(output, tmp_path):
    path = str(tmp_path / "cells" / f"p1{output.suffix}")
    assert _write(output, path) == WRITTEN.num_rows
    assert output.reader.scan(path, None).footer_rows == WRITTEN.num_rows


def test_columns_of_an_engines_table_are_its_names_and_types(output):
    table = WRITTEN.select(["Metadata_Well", "Metadata_ImageNumber", "Cells_AreaShape_Area"])
    assert [(c.name, c.type) for c in output.writer.columns_of(output.feed(table))] == [
        ("Metadata_Well", DataType.STRING), ("Metadata_ImageNumber", DataType.INT64),
        ("Cells_AreaShape_Area", DataType.FLOAT64)]


@pytest.mark.parametrize("name", REAL)
def test_the_checksum_recorded_is_the_one_validate_recomputes_from_the_keys_written(
        name, tmp_path):
    output = _format(name)
    path = str(tmp_path / f"cells{output.suffix}")
    _write(output, path)
    scan = output.reader.scan(path, KEY_COLUMNS)
    recorded = Checksum.from_json(dict(scan.metadata)[CHECKSUM_KEY])
    assert scan.checksum == recorded
    written = TableDigest(WRITTEN.schema, KEY_COLUMNS)
    written.update(WRITTEN)
    assert (recorded.rows, recorded.key_columns, recorded.key_digest) == (
        WRITTEN.num_rows, KEY_COLUMNS, written.checksum().key_digest)



@pytest.mark.parametrize("name", ["fake", *(f.name for f in formats.FORMATS if not f.warehouse)])
def test_a_sealed_folder_of_tables_lists_them_and_a_table_removed_is_found(name, tmp_path):
    output = _format(name)
    folder = str(tmp_path / "tables")
    for table in ("cells", "nuclei"):
        _write(output, f"{folder}/{table}{output.suffix}")
    output.writer.seal(folder)
    manifest, found = output.reader.folder(folder)
    assert set(found) == {f"cells{output.suffix}", f"nuclei{output.suffix}"}
    assert check_folder(folder, manifest, found, current=True).ok
    output.remove(f"{folder}/cells{output.suffix}")
    check = check_folder(folder, *output.reader.folder(folder), current=True)
    assert not check.ok and f"missing cells{output.suffix}" in check.detail


@pytest.mark.parametrize("lacking", ["Metadata_Well", "Metadata_ObjectNumber"])
def test_rows_lacking_a_column_of_the_table_are_a_named_error(output, tmp_path, lacking):
    sink = output.writer.create(str(tmp_path / f"cells{output.suffix}"), COLUMNS)
    sink.write(output.feed(CHUNKS[0]))
    with pytest.raises(SchemaError, match="do not fit its columns"):
        sink.write(output.feed(CHUNKS[2].drop_columns([lacking])))
