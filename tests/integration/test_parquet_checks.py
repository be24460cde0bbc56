"""Checksums written with Parquet files and recomputed from them (``celltable validate``)."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from celltable.adapters.parquet import ParquetWriter, domain_columns
from celltable.adapters.parquet_checks import ChecksummedWriter, ParquetReader, TableDigest
from celltable.domain.errors import SourceNotFoundError, SourceReadError
from celltable.domain.validation import CHECKSUM_KEY, Checksum

KEYS = ("Metadata_TableNumber", "Metadata_ImageNumber", "Metadata_ObjectNumber")


def _table(n=100, plate="plate_a"):
    return pa.table({
        "Metadata_TableNumber": [plate if i % 7 else None for i in range(n)],
        "Metadata_ImageNumber": pa.array([i // 10 for i in range(n)], pa.int64()),
        "Metadata_ObjectNumber": pa.array([i % 10 + 1 for i in range(n)], pa.int64()),
        "Cells_AreaShape_Area": [float(i) if i % 3 else None for i in range(n)],
    })


def _digest(*parts):
    d = TableDigest(parts[0].schema, KEYS)
    for p in parts:
        d.update(p)
    return d.checksum()


def test_the_digest_depends_on_values_not_on_how_they_are_chunked():
    t = _table()
    whole = _digest(t)
    assert whole == _digest(t.slice(0, 33), t.slice(33, 1), t.slice(34))
    assert whole == _digest(pa.concat_tables([t.slice(0, 50), t.slice(50)]))
    assert dict(whole.null_counts) == {"Metadata_TableNumber": 15, "Metadata_ImageNumber": 0,
                                       "Metadata_ObjectNumber": 0, "Cells_AreaShape_Area": 34}


def test_the_digest_changes_with_any_key_value():
    t = _table()
    objects = t.column("Metadata_ObjectNumber").to_pylist()
    objects[42] += 1
    moved = t.set_column(2, "Metadata_ObjectNumber", pa.array(objects, pa.int64()))
    renamed = _table(plate="plate_b")
    empty_text = t.set_column(0, "Metadata_TableNumber",
                              pa.array([v or "" for v in t.column(0).to_pylist()]))
    digests = {_digest(x).key_digest for x in (t, moved, renamed, empty_text)}
    assert len(digests) == 4  # NULL and "" differ too


def test_written_files_carry_a_checksum_the_reader_recomputes(tmp_path):
    path = tmp_path / "o.parquet"
    t = _table(1000)
    writer = ChecksummedWriter(ParquetWriter())
    sink = writer.create(str(path), domain_columns(t.schema))
    for i in range(0, 1000, 300):
        sink.write(t.slice(i, 300))
    assert sink.close({"celltable.provenance": "{}"}) == 1000
    recorded = Checksum.from_json(pq.read_metadata(path).metadata[CHECKSUM_KEY.encode()].decode())
    assert recorded.rows == 1000 and recorded.key_columns == KEYS
    scan = ParquetReader().scan(str(path), recorded.key_columns)
    assert scan.checksum == recorded and scan.footer_rows == 1000
    assert dict(scan.metadata)["celltable.provenance"] == "{}"
    assert ParquetReader().scan(str(path), None).checksum is None


def test_the_reader_names_what_it_cannot_read(tmp_path):
    reader = ParquetReader()
    with pytest.raises(SourceNotFoundError, match="does not exist"):
        reader.tables(str(tmp_path / "nowhere.parquet"))
    (tmp_path / "notes.parquet").write_text("not parquet")
    with pytest.raises(SourceReadError, match="not a readable Parquet file"):
        reader.scan(str(tmp_path / "notes.parquet"), None)
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceReadError, match="without Parquet files"):
        reader.tables(str(tmp_path / "empty"))
    assert json.loads(Checksum(0, (), "", ()).to_json())["rows"] == 0
