"""The ``QueryEngine`` port's behaviour: DuckDB (plates as CSV folders, read in place or staged
as a copy) and the fake (the same plates as rows in memory) give the same chunk outputs.

Only the port's methods are used (``stage``, ``chunk_sources``, ``read_chunk``, ``release``,
``describe``); the queries are built from the domain's plan as the convert use case builds
them. Outputs are compared with each value's Python type, so an integer the fake leaves where
DuckDB casts to a float is a difference.
"""

from __future__ import annotations

import csv
import sqlite3
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from celltable.adapters.duckdb_engine import DuckDBEngine
from celltable.adapters.storage import LocalSourceLocator
from celltable.domain.join import ChunkQuery, derive_join
from celltable.domain.naming import OBJECT_NUMBER, TABLE_NUMBER, image_number
from celltable.domain.output import check_join_columns, plan_output
from celltable.domain.plan import plan_chunks
from celltable.domain.ports import QueryEngine
from celltable.domain.presets import IMAGE, Preset, get_preset
from celltable.domain.sources import ChunkOutput, SourceLayout
from tests.fakes import FakeEngine, FakeSource
from tests.integration.test_describe import _write_plate

PRESET = get_preset("cellprofiler_csv")
SQLITE = get_preset("cellprofiler_sqlite")
Plate = dict[str, list[dict[str, Any]]]


def _plate(images: int = 2, per_image: int = 3, area: float | int = 1.5) -> Plate:
    image = [{"ImageNumber": i, "Metadata_Well": f"A0{i}", "FileName_DNA": f"{i}.tif"}
             for i in range(1, images + 1)]
    cells, cyto, nuclei = [], [], []
    for i in range(1, images + 1):
        for o in range(1, per_image + 1):
            cells.append({"ImageNumber": i, "ObjectNumber": o, "AreaShape_Area": area * o})
            nuclei.append({"ImageNumber": i, "ObjectNumber": o, "AreaShape_Area": 2 * area * o})
            cyto.append({"ImageNumber": i, "ObjectNumber": o, "Parent_Cells": o,
                         "Parent_Nuclei": o, "AreaShape_Area": 3 * area * o})
    return {"Image": image, "Cells": cells, "Cytoplasm": cyto, "Nuclei": nuclei}


def _orphans() -> Plate:
    """A cytoplasm without its cell, one without its nucleus, one without either."""
    plate = _plate(images=3)
    plate["Cytoplasm"] += [
        {"ImageNumber": 1, "ObjectNumber": 7, "Parent_Cells": 99, "Parent_Nuclei": 1,
         "AreaShape_Area": 0.5},
        {"ImageNumber": 2, "ObjectNumber": 8, "Parent_Cells": 1, "Parent_Nuclei": 99,
         "AreaShape_Area": 0.25},
        {"ImageNumber": 3, "ObjectNumber": 9, "Parent_Cells": 98, "Parent_Nuclei": 98,
         "AreaShape_Area": 0.125},
    ]
    plate["Cytoplasm"].sort(key=lambda r: r["ImageNumber"])
    return plate


def _objects_out_of_order() -> Plate:
    """Images in order, each image's objects stored last first."""
    plate = _plate(images=3)
    for rows in plate.values():
        rows.sort(key=lambda r: (r["ImageNumber"], -r.get("ObjectNumber", 0)))
    return plate


def _images_out_of_order() -> Plate:
    plate = _plate(images=3)
    for name in ("Cells", "Cytoplasm"):
        plate[name].sort(key=lambda r: -r["ImageNumber"])
    return plate


def _without_an_image_row() -> Plate:
    plate = _plate(images=3)
    plate["Image"] = [r for r in plate["Image"] if r["ImageNumber"] != 2]
    return plate


def _null_object_numbers() -> Plate:
    plate = _plate(images=2)
    plate["Nuclei"][1]["ObjectNumber"] = None
    return plate


def _null_image_keys() -> Plate:
    """Rows without an image number: they travel with a plate's first chunk."""
    plate = _plate(images=2)
    plate["Cytoplasm"].append({"ImageNumber": None, "ObjectNumber": 9, "Parent_Cells": 1,
                               "Parent_Nuclei": 1, "AreaShape_Area": 0.5})
    plate["Cells"].append({"ImageNumber": None, "ObjectNumber": 9, "AreaShape_Area": 0.25})
    return plate


PLATES: dict[str, Callable[[], dict[str, Plate]]] = {
    "plain": lambda: {"p1": _plate()},
    "two plates, integer and float areas": lambda: {"p1": _plate(), "p2": _plate(area=2)},
    "orphans": lambda: {"p1": _orphans()},
    "objects out of order": lambda: {"p1": _objects_out_of_order()},
    "images out of order": lambda: {"p1": _images_out_of_order()},
    "an image without its image row": lambda: {"p1": _without_an_image_row()},
    "NULL object numbers": lambda: {"p1": _null_object_numbers()},
    "NULL image numbers": lambda: {"p1": _null_image_keys()},
}


def _value(v: Any) -> tuple[str, Any]:
    return type(v).__name__, v


def _rows(data: object) -> list[tuple[tuple[str, tuple[str, Any]], ...]]:
    rows = data.to_pylist() if hasattr(data, "to_pylist") else data  # type: ignore[attr-defined]
    return [tuple((k, _value(v)) for k, v in row.items()) for row in rows]  # type: ignore[union-attr]


def _outcome(out: ChunkOutput) -> tuple[Any, ...]:
    return (out.chunk, out.rows_out, out.rows_in, out.dropped, dict(out.missing),
            out.null_objects, _rows(out.data))


def _convert(engine: QueryEngine, layout: SourceLayout, preset: Preset, scratch: str, *,
             joined: bool, chunk_size: int, copy: bool) -> dict[str, Any]:
    """Every output table's chunk outcomes, and what staging found of each table."""
    order = (TABLE_NUMBER, image_number(preset), OBJECT_NUMBER)
    staged = [engine.stage(u, preset, scratch, copy=copy) for u in layout.plates]
    try:
        tables: dict[str, Any] = {
            f"{s.plate.key}/{t}": (s.table(t).schema, s.table(t).rows, s.table(t).rows_by_image,
                                  s.table(t).null_keys)
            for s in staged for t in preset.tables if s.table(t) is not None}
        spec = derive_join(preset)
        outputs = [("joined", (IMAGE, *spec.tables), spec.base)] if joined else \
            [(t.lower(), (t,), t) for t in preset.tables if any(s.table(t) for s in staged)]
        for name, sources, base in outputs:
            plan = plan_output(preset, name, sources, staged, joined=joined)
            tables[name] = [(c.name, c.type) for c in plan.columns]
            for s in (s for s in staged if s.table(base) is not None):
                join = check_join_columns(preset, spec, s) if joined else None
                queries = [ChunkQuery(chunk, plan.selects_for(s.plate.key), base, preset.image_key,
                                      join=join, order_by=order)
                           for chunk in plan_chunks(s.plate.key, s.table(base).rows_by_image,
                                                    chunk_size)]
                for source, query in zip(engine.chunk_sources(s, queries), queries, strict=True):
                    tables.setdefault(f"{name} chunks", []).append(
                        _outcome(engine.read_chunk(source, query)))
        return tables
    finally:
        for s in staged:
            engine.release(s)


# a chunk per image both ways; one chunk per plate, joined from the source itself
COMBINATIONS = [
    *(pytest.param(joined, 1, copy, id=f"{'joined' if joined else 'per table'}-"
                   f"{'copied' if copy else 'in place'}-chunk per image")
      for joined in (True, False) for copy in (False, True)),
    pytest.param(True, 1000, False, id="joined-in place-one chunk"),
]


@pytest.mark.parametrize(("joined", "chunk_size", "copy"), COMBINATIONS)
@pytest.mark.parametrize("case", sorted(PLATES))
def test_duckdb_and_the_fake_give_the_same_chunks_of_csv_plates(case, joined, chunk_size, copy,
                                                                 tmp_path):
    plates = PLATES[case]()
    (tmp_path / "src").mkdir()
    for key, plate in plates.items():
        _write_plate(tmp_path / "src" / key, plate)
    _compare(plates, tmp_path, PRESET, joined=joined, chunk_size=chunk_size, copy=copy)


@pytest.mark.parametrize(("joined", "chunk_size", "copy"), [COMBINATIONS[0], COMBINATIONS[3]])
@pytest.mark.parametrize("case", sorted(PLATES))
def test_duckdb_and_the_fake_give_the_same_chunks_of_sqlite_plates(case, joined, chunk_size,
                                                                    copy, tmp_path):
    plates = {key: _sqlite_columns(plate) for key, plate in PLATES[case]().items()}
    (tmp_path / "src").mkdir()
    for key, plate in plates.items():
        _write_sqlite(tmp_path / "src" / f"{key}.sqlite", plate)
    _compare(plates, tmp_path, SQLITE, joined=joined, chunk_size=chunk_size, copy=copy)


@pytest.mark.parametrize("joined", [True, False], ids=["joined", "per table"])
def test_duckdb_and_the_fake_give_the_same_chunks_of_plates_without_image_numbers(joined,
                                                                                  tmp_path):
    """IN Carta: every file a plate of one table, with no image number (one chunk each)."""
    preset = get_preset("in-carta")
    plates = {f"day{d}": {"Objects": [
        {"OBJECT ID": o, "WELL LABEL": f"B - 0{d}", "Nuclei Area wv1": 10.0 * o + d,
         "Class Name": None if o == 2 else "cell"} for o in (3, 1, 2)]} for d in (1, 2)}
    (tmp_path / "src").mkdir()
    for key, plate in plates.items():
        _write_csv(tmp_path / "src" / f"{key}.csv", plate["Objects"])
    _compare(plates, tmp_path, preset, joined=joined, chunk_size=1, copy=False)
    if joined:  # and described alike (an object exported twice is a repeated key)
        plate = plates["day1"]["Objects"]
        _write_csv(tmp_path / "day1.csv", [*plate, plate[0]])
        (listed,) = LocalSourceLocator().discover(str(tmp_path / "day1.csv"), preset).plates
        real = DuckDBEngine().describe(listed, preset)
        fake = FakeEngine(FakeSource({listed.key: {"Objects": [*plate, plate[0]]}})).describe(
            listed, preset)
        assert [(t.table, t.schema, t.rows, t.null_keys, t.duplicate_keys) for t in fake.tables] \
            == [(t.table, t.schema, t.rows, t.null_keys, t.duplicate_keys) for t in real.tables] \
            == [("Objects", real.tables[0].schema, 4, 0, 1)]


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def _compare(plates: dict[str, Plate], tmp_path: Path, preset: Preset, **how: Any) -> None:
    layout = LocalSourceLocator().discover(str(tmp_path / "src"), preset)
    by_key = {u.key: plates[Path(u.path).stem] for u in layout.plates}
    assert len(by_key) == len(plates)
    real = _convert(DuckDBEngine(), layout, preset, str(tmp_path), **how)
    fake = _convert(FakeEngine(FakeSource(by_key)), layout, preset, str(tmp_path), **how)
    assert fake == real


def _sqlite_columns(plate: Plate) -> Plate:
    """The plate as CellProfiler's SQLite export names its columns (``Cells_AreaShape_Area``,
    ``Cells_Number_Object_Number``, ``Cytoplasm_Parent_Cells`` ...)."""
    def named(table: str, column: str) -> str:
        if column == "ImageNumber":
            return column
        return f"{table}_Number_Object_Number" if column == "ObjectNumber" else f"{table}_{column}"

    return {t: [{named(t, c): v for c, v in row.items()} for row in rows]
            for t, rows in plate.items()}


def _write_sqlite(path: Path, plate: Plate) -> None:
    types = {int: "INTEGER", float: "REAL", str: "TEXT"}
    with closing(sqlite3.connect(path)) as con, con:
        for table, rows in plate.items():
            columns = list(rows[0])
            declared = [types[type(next((r[c] for r in rows if r[c] is not None), ""))]
                        for c in columns]
            con.execute(f"CREATE TABLE Per_{table} ("
                        + ", ".join(f'"{c}" {t}' for c, t in zip(columns, declared, strict=True))
                        + ")")
            con.executemany(f"INSERT INTO Per_{table} VALUES ({', '.join('?' * len(columns))})",
                            [tuple(r[c] for c in columns) for r in rows])


@pytest.mark.parametrize("sqlite", [False, True], ids=["csv", "sqlite"])
def test_a_plate_is_described_alike_without_staging(tmp_path, sqlite):
    plate, preset = (_sqlite_columns(_orphans()), SQLITE) if sqlite else (_orphans(), PRESET)
    if sqlite:
        _write_sqlite(tmp_path / "p1", plate)
    else:
        _write_plate(tmp_path / "p1", plate)
    (listed,) = LocalSourceLocator().discover(str(tmp_path / "p1"), preset).plates
    real = DuckDBEngine().describe(listed, preset)
    fake = FakeEngine(FakeSource({listed.key: plate})).describe(listed, preset)
    assert {t.table: (t.schema, t.rows, t.null_keys, t.duplicate_keys) for t in fake.tables} \
        == {t.table: (t.schema, t.rows, t.null_keys, t.duplicate_keys) for t in real.tables}
    assert sorted(n for _, n in fake.orphans) == sorted(n for _, n in real.orphans) == [2, 2]
    assert dict(fake.orphans) == dict(real.orphans)


@pytest.mark.parametrize("copy", [False, True], ids=["in place", "copied"])
def test_release_leaves_the_scratch_folder_as_it_was_and_the_source_untouched(tmp_path, copy):
    plate = _orphans()
    _write_plate(tmp_path / "p1", plate)
    files = {p: p.read_bytes() for p in (tmp_path / "p1").iterdir()}
    (listed,) = LocalSourceLocator().discover(str(tmp_path / "p1"), PRESET).plates
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    for engine in (DuckDBEngine(), FakeEngine(FakeSource({listed.key: plate}))):
        staged = engine.stage(listed, PRESET, str(scratch), copy=copy)
        engine.release(staged)
        assert list(scratch.iterdir()) == []
        assert {p: p.read_bytes() for p in (tmp_path / "p1").iterdir()} == files
