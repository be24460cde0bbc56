"""One behaviour suite for every source-format reader (``adapters/source_formats.py``: CSV,
SQLite, NPZ, IN Carta's CSV) through the query engine, and for the fake engine of
``tests/fakes.py`` where it applies: each format's tables are found, orphans are counted and
dropped, rows come out in image order however they are stored, and chunk edges (a boundary on
the first or the last image, an image without objects) lose or repeat nothing.

A plate is written from one model (cells per image; an orphan: a cytoplasm whose parent cell is
missing) in each format, so every format is held to the same expected rows.
"""

from __future__ import annotations

import csv
import io
import sqlite3
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from celltable.adapters.duckdb_engine import DuckDBEngine
from celltable.adapters.source_formats import REGISTRY
from celltable.adapters.storage import LocalSourceLocator
from celltable.domain.join import ChunkQuery, derive_join
from celltable.domain.naming import OBJECT_NUMBER, TABLE_NUMBER, image_number
from celltable.domain.output import check_join_columns, plan_output
from celltable.domain.plan import plan_chunks
from celltable.domain.presets import IMAGE, Preset, get_preset
from celltable.domain.sources import StagedPlate
from tests.fakes import FakeEngine, FakeSource

CELLS = (3, 0, 2, 4)
"""Objects per image 1..4: image 2 has none."""
ORPHAN = (4, 99)
"""``(image, parent cell)`` of a cytoplasm whose cell does not exist."""


def _rows(preset: Preset, shuffled: bool) -> dict[str, list[dict[str, object]]]:
    """The model plate as rows of the preset's tables (source column names); ``shuffled``:
    stored in reverse image order."""
    key = preset.image_key
    images = [{key: i, "Metadata_Well": f"A0{i}"} for i in range(1, len(CELLS) + 1)]
    tables: dict[str, list[dict[str, object]]] = {IMAGE: images}
    for comp in preset.compartments:
        rows = []
        for image, n in enumerate(CELLS, start=1):
            for obj in range(1, n + 1):
                row: dict[str, object] = {key: image, comp.object_number: obj}
                row.update({r.column: obj for r in preset.relationships if r.child == comp.name})
                row[f"{comp.name}_AreaShape_Area"] = image * 10.0 + obj
                rows.append(row)
        if comp.name == preset.base and preset.relationships:
            image, parent = ORPHAN
            orphan = {**rows[-1], comp.object_number: CELLS[image - 1] + 1}
            orphan[next(r.column for r in preset.relationships if r.parent == "Cells")] = parent
            rows.append(orphan)
        tables[comp.name] = rows
    if shuffled:
        tables = {t: sorted(rows, key=lambda r: -int(r[key])) for t, rows in tables.items()}
    return tables


def _source_name(preset: Preset, table: str) -> str:
    return preset.image_table if table == IMAGE else preset.compartment(table).table


def _write_csv(folder: Path, preset: Preset, shuffled: bool) -> Path:
    folder.mkdir(parents=True)
    for table, rows in _rows(preset, shuffled).items():
        with (folder / f"{_source_name(preset, table)}.csv").open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    return folder


def _write_sqlite(folder: Path, preset: Preset, shuffled: bool) -> Path:
    folder.mkdir(parents=True)
    path = folder / "plate.sqlite"
    with sqlite3.connect(path) as con:
        for table, rows in _rows(preset, shuffled).items():
            cols = list(rows[0])
            types = {c: "TEXT" if isinstance(rows[0][c], str) else
                     "REAL" if isinstance(rows[0][c], float) else "INTEGER" for c in cols}
            name = _source_name(preset, table)
            con.execute(f'CREATE TABLE "{name}" ({", ".join(f"{c!r} {types[c]}" for c in cols)})')
            con.executemany(f'INSERT INTO "{name}" VALUES ({", ".join("?" * len(cols))})',
                            [tuple(r[c] for c in cols) for r in rows])
    return path


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=True)
    return buf.getvalue()


def _write_npz(folder: Path, preset: Preset, shuffled: bool) -> Path:
    plate = folder / "plate"
    plate.mkdir(parents=True)
    for site, cells in enumerate(CELLS, start=1):  # the site's position is its image number
        with zipfile.ZipFile(plate / f"A01_s{site}.npz", "w") as zf:
            zf.writestr("features.npy", _npy(np.arange(cells * 3, dtype=np.float32)
                                             .reshape(cells, 3)))
            zf.writestr("locations.npy", _npy(np.ones((cells, 2))))
            zf.writestr("metadata.npy", _npy(np.array(
                {"Metadata_Plate": "P", "Metadata_Well": "A01", "Metadata_Site": site},
                dtype=object)))
    return folder


def _write_in_carta(folder: Path, preset: Preset, shuffled: bool) -> Path:
    folder.mkdir(parents=True)
    for name, n in (("plate_a", 3), ("plate_b", 2)):
        with (folder / f"{name}.csv").open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["WELL LABEL", "OBJECT ID", "Nuclei Area"])
            ids = list(range(1, n + 1))
            writer.writerows(["B02", i, i * 1.5] for i in (reversed(ids) if shuffled else ids))
    return folder


@dataclass(frozen=True)
class Case:
    preset: str
    write: Callable[[Path, Preset, bool], Path]
    tables: tuple[str, ...]
    plates: int = 1

    @property
    def model(self) -> bool:
        """Whether the plate is the model (images, compartments, an orphan)."""
        return bool(get_preset(self.preset).relationships)


CASES = {
    "csv": Case("cellprofiler_csv", _write_csv, ("Image", "Cytoplasm", "Cells", "Nuclei")),
    "sqlite": Case("cellprofiler_sqlite", _write_sqlite, ("Image", "Cytoplasm", "Cells", "Nuclei")),
    "npz": Case("deepprofiler", _write_npz, ("Cells",) * len(CELLS)),
    "in_carta": Case("in-carta", _write_in_carta, ("Objects",), plates=2),
}
MODEL = [name for name, case in CASES.items() if case.model]


def test_every_registered_format_has_a_case_here():
    assert {get_preset(c.preset).source_format for c in CASES.values()} == set(REGISTRY)


def _queries(preset: Preset, staged: StagedPlate, chunk_size: int) -> list[ChunkQuery]:
    spec = derive_join(preset)
    join = check_join_columns(preset, spec, staged)
    tables = (IMAGE, *spec.tables) if preset.image_table else spec.tables
    plan = plan_output(preset, "joined", tables, [staged], joined=True)
    base = staged.table(spec.base)
    assert base is not None
    return [ChunkQuery(c, plan.selects_for(staged.plate.key), spec.base, preset.image_key,
                       join=join, order_by=(TABLE_NUMBER, image_number(preset), OBJECT_NUMBER))
            for c in plan_chunks(staged.plate.key, base.rows_by_image, chunk_size)]


def _read(engine, staged: StagedPlate, preset: Preset, chunk_size: int):
    """Each chunk's query and output rows (as dicts), and the rows dropped and missing."""
    queries = _queries(preset, staged, chunk_size)
    chunks, dropped, missing = [], 0, 0
    for query, source in zip(queries, engine.chunk_sources(staged, queries), strict=True):
        out = engine.read_chunk(source, query)
        rows = out.data if isinstance(out.data, list) else out.data.to_pylist()
        assert out.rows_out == len(rows)
        chunks.append((query, rows))
        dropped += out.dropped
        missing += sum(n for _, n in out.missing)
    return chunks, dropped, missing


def _staged(case: Case, tmp_path: Path, shuffled: bool = False, copy: bool = False):
    preset = get_preset(case.preset)
    source = case.write(tmp_path / "src", preset, shuffled)
    layout = LocalSourceLocator().discover(str(source), preset)
    engine = DuckDBEngine()
    return engine, [engine.stage(u, preset, str(tmp_path), copy=copy) for u in layout.plates]


def _fake(shuffled: bool = False):
    preset = get_preset("cellprofiler_csv")
    source = FakeSource({"p": _rows(preset, shuffled)})
    engine = FakeEngine(source)
    plate = source.discover("src", preset).plates[0]
    return engine, [engine.stage(plate, preset, "")], plate


def _keys(rows, preset: Preset) -> list[tuple[int, int]]:
    return [(r[image_number(preset)], r[OBJECT_NUMBER]) for r in rows]


EXPECTED = [(i, o) for i, n in enumerate(CELLS, start=1) for o in range(1, n + 1)]
"""The joined rows of the model plate: every cytoplasm but the orphan, in image order."""


@pytest.mark.parametrize("name", list(CASES))
def test_each_formats_tables_are_found_plate_by_plate(tmp_path, name):
    case = CASES[name]
    preset = get_preset(case.preset)
    layout = LocalSourceLocator().discover(str(case.write(tmp_path / "src", preset, False)),
                                           preset)
    assert len(layout.plates) == case.plates and not layout.bad
    assert sorted(t.table for t in layout.plates[0].tables) == sorted(case.tables)
    assert all(Path(t.path).exists() for u in layout.plates for t in u.tables)


@pytest.mark.parametrize("name", [*MODEL, "fake"])
def test_orphans_are_counted_by_describe_and_dropped_by_the_join(tmp_path, name):
    preset = get_preset("cellprofiler_csv" if name == "fake" else CASES[name].preset)
    if name == "fake":
        engine, (staged,), plate = _fake()
    else:
        engine, (staged,) = _staged(CASES[name], tmp_path)
        plate = staged.plate
    described = engine.describe(plate, preset)
    assert sum(n for _, n in described.orphans) == 1
    chunks, dropped, missing = _read(engine, staged, preset, 1000)
    assert _keys([r for _, rows in chunks for r in rows], preset) == EXPECTED
    assert dropped == missing == 1


@pytest.mark.parametrize("copy", [False, True], ids=["in_place", "copied"])
@pytest.mark.parametrize("shuffled", [False, True], ids=["stored_in_order", "stored_shuffled"])
@pytest.mark.parametrize("name", [*MODEL, "fake"])
def test_rows_come_out_in_image_order_however_they_are_stored(tmp_path, name, shuffled, copy):
    preset = get_preset("cellprofiler_csv" if name == "fake" else CASES[name].preset)
    if name == "fake":
        engine, (staged,), _ = _fake(shuffled)
    else:
        engine, (staged,) = _staged(CASES[name], tmp_path, shuffled, copy)
        assert staged.in_place is (not shuffled and not copy)
    chunks, _, _ = _read(engine, staged, preset, 2)
    assert _keys([r for _, rows in chunks for r in rows], preset) == EXPECTED
    engine.release(staged)


@pytest.mark.parametrize("chunk_size", [1, CELLS[0], sum(CELLS) - CELLS[-1], 10_000],
                         ids=["image_each", "first_image_alone", "last_image_alone", "one"])
@pytest.mark.parametrize("name", [*MODEL, "npz", "fake"])
def test_chunk_edges_lose_and_repeat_nothing(tmp_path, name, chunk_size):
    preset = get_preset("cellprofiler_csv" if name == "fake" else CASES[name].preset)
    engine, (staged,) = _fake()[:2] if name == "fake" else _staged(CASES[name], tmp_path)
    chunks, _, _ = _read(engine, staged, preset, chunk_size)
    for query, rows in chunks:  # each chunk holds its own images only
        assert all(query.chunk.contains(i) for i, _ in _keys(rows, preset))
    # NPZ: every cell of every site, numbered by its row in the file; the others: the join
    assert _keys([r for _, rows in chunks for r in rows], preset) == EXPECTED
    firsts = [sorted({i for i, _ in _keys(rows, preset)}) for _, rows in chunks]
    if chunk_size == CELLS[0]:  # a boundary right after the first image
        assert firsts[0] == [1]
    if chunk_size == sum(CELLS) - CELLS[-1]:  # the last image alone
        assert firsts[-1] == [len(CELLS)]
    engine.release(staged)


@pytest.mark.parametrize("shuffled", [False, True], ids=["stored_in_order", "stored_shuffled"])
def test_in_carta_rows_of_every_file_are_read_once_ordered_by_object(tmp_path, shuffled):
    case = CASES["in_carta"]
    preset = get_preset(case.preset)
    engine, staged = _staged(case, tmp_path, shuffled)
    for s, n in zip(staged, (3, 2), strict=True):
        chunks, dropped, _ = _read(engine, s, preset, 1)
        assert len(chunks) == 1 and dropped == 0  # no image key: the file is one chunk
        assert [r[OBJECT_NUMBER] for r in chunks[0][1]] == list(range(1, n + 1))
        engine.release(s)
