"""IN Carta CSV exports on the shared data: every file a plate, stacked, names made safe.

Expected counts come from the files, read with csv."""

from __future__ import annotations

import csv
from collections import Counter

import pyarrow.parquet as pq

import celltable
from celltable.domain.naming import safe_name
from tests.conftest import REAL_DATA

IN_CARTA = REAL_DATA / "in-carta" / "colas-lab"



def _files() -> dict[str, list[str]]:
    """Each file's rows count and header, by file name."""
    out = {}
    for path in sorted(IN_CARTA.glob("*.csv")):
        with path.open(newline="") as f:
            rows = list(csv.reader(f))
        out[path.name] = (len(rows) - 1, rows[0])
    return out


def test_in_carta_files_are_stacked_with_every_column_under_a_safe_name(tmp_path):
    files = _files()
    result = celltable.convert(IN_CARTA, tmp_path / "o.parquet")  # detected from its columns
    assert result.preset == "in-carta"
    table = pq.read_table(result.dest_path)
    assert table.num_rows == result.rows_out == sum(n for n, _ in files.values())
    assert Counter(table.column("Metadata_TableNumber").to_pylist()) == {
        name: n for name, (n, _) in files.items()}
    (header,) = {tuple(h) for _, h in files.values()}
    assert len(table.column_names) == len(header) + 1  # every column, plus the file
    for name in table.column_names:
        assert name == safe_name(name)
    assert "Metadata_WELL_LABEL" in table.column_names
    assert "Metadata_ObjectNumber" in table.column_names  # OBJECT ID
    assert "Objects_Primary_Target_Area_wv1" in table.column_names
    assert celltable.validate(result.dest_path).ok


def test_one_in_carta_file_converts_alone(tmp_path):
    path = sorted(IN_CARTA.glob("*.csv"))[0]
    result = celltable.convert(path, tmp_path / "o.parquet", preset="in-carta")
    assert result.plates == (path.name,)
    assert result.rows_out == _files()[path.name][0]


def test_one_in_carta_file_is_detected_without_a_preset(tmp_path):
    path = sorted(IN_CARTA.glob("*.csv"))[0]
    result = celltable.convert(path, tmp_path / "o.parquet")  # not tried as SQLite first
    assert result.preset == "in-carta"
    assert result.rows_out == _files()[path.name][0]
